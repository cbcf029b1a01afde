"""The verdict rules on synthetic numbers (hand-computed intervals)."""
import math

import pytest

from cnnlab.experiments.stats import HELD, INCONCLUSIVE, NOT_HELD, Check, combine, compare, exact, not_below, summarize


def test_summarize_matches_a_hand_computation():
    s = summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 3
    assert s["std"] == pytest.approx(1.0)  # sample std (ddof 1) of 1, 2, 3
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) from a table
    assert s["ci95"] == pytest.approx([2 - half, 2 + half])
    one = summarize([5.0])
    assert one["std"] is None and one["ci95"] is None and one["n"] == 1
    with pytest.raises(ValueError):
        summarize([])


def _cmp(a, b, greater=True):
    return compare("c", "claim", summarize(a), summarize(b), a_label="a", b_label="b", greater=greater).verdict


def test_compare_held_not_held_inconclusive():
    high, low = [10.0, 10.1, 9.9], [5.0, 5.1, 4.9]
    assert _cmp(high, low, greater=True) == HELD
    assert _cmp(low, high, greater=True) == NOT_HELD
    assert _cmp(low, high, greater=False) == HELD
    assert _cmp(high, low, greater=False) == NOT_HELD
    # means differ but the intervals overlap: 1 +- 1 vs 2 +- 1 with 3 seeds
    assert _cmp([2.0, 1.0, 3.0], [1.0, 0.0, 2.0]) == INCONCLUSIVE
    # one seed: no interval, never a verdict
    assert _cmp([10.0], [1.0]) == INCONCLUSIVE


def test_compare_boundary_uses_the_t_interval_not_the_std():
    # n=2, values 1.9 and 2.1: std 0.1414, half-width 12.706*0.1414/sqrt(2) = 1.2706
    s = summarize([1.9, 2.1])
    assert s["ci95"][0] == pytest.approx(2 - 1.2706, abs=1e-3)
    assert _cmp([1.9, 2.1], [0.7, 0.7]) == HELD  # 0.7 < 0.7294
    assert _cmp([1.9, 2.1], [0.75, 0.75]) == INCONCLUSIVE


def test_not_below_is_non_inferiority_with_a_margin():
    def nb(a, b, margin=0.5):
        return not_below("c", "claim", summarize(a), summarize(b), a_label="a", b_label="b", margin=margin).verdict

    assert nb([5.0, 5.1, 4.9], [10.0, 10.1, 9.9]) == NOT_HELD  # clearly worse
    assert nb([10.0, 10.1, 9.9], [5.0, 5.1, 4.9]) == HELD  # clearly better
    # a: mean 10, half-width 4.303*0.1/sqrt3 = 0.248 -> lower end 9.752; b's mean 10.2
    assert nb([10.0, 10.1, 9.9], [10.2, 10.2, 10.2], margin=0.5) == HELD  # 9.752 >= 9.7
    assert nb([10.0, 10.1, 9.9], [10.2, 10.2, 10.2], margin=0.4) == INCONCLUSIVE  # 9.752 < 9.8, intervals overlap
    assert nb([1.0, 10.0, 19.0], [10.0, 10.1, 9.9]) == INCONCLUSIVE  # too noisy to show anything
    assert nb([1.0], [2.0]) == INCONCLUSIVE


def test_exact_and_combine():
    assert exact("e", "c", 854_196_224, 854_196_224).verdict == HELD
    assert exact("e", "c", 854_196_225, 854_196_224).verdict == NOT_HELD
    assert exact("e", "c", 1e-12, 0.0, tol=1e-9).verdict == HELD
    assert exact("e", "c", 1e-6, 0.0, tol=1e-9).verdict == NOT_HELD

    def ch(v):
        return Check("n", "c", v, "r", "e")

    assert combine([ch(HELD), ch(HELD)]) == HELD
    assert combine([ch(HELD), ch(INCONCLUSIVE)]) == INCONCLUSIVE
    assert combine([ch(INCONCLUSIVE), ch(NOT_HELD), ch(HELD)]) == NOT_HELD
    assert combine([]) == INCONCLUSIVE
