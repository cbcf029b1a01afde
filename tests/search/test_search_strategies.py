"""Strategies: regularized evolution's aging and mutation, exact continuation from a state_dict."""
import copy

import pytest

from cnnlab.search.spaces import get_space
from cnnlab.search.strategies import RegularizedEvolution, get_strategy


def _reward(tokens):
    return sum(tokens) / (len(tokens) * 3)


def test_evolution_starts_random_then_mutates_one_decision_and_ages():
    space = get_space("layers", num_layers=2)
    evo = RegularizedEvolution(space, seed=0, population_size=4, sample_size=2)
    told = []
    for _ in range(4):  # the initial population
        tokens, info = evo.ask()
        assert info["parent"] is None
        evo.tell(tokens, _reward(tokens))
        told.append(tokens)
    for step in range(20):
        tokens, info = evo.ask()
        parent = tuple(info["parent"])
        assert parent in {t for t, _ in evo.population}  # the parent is a living member
        assert sum(a != b for a, b in zip(parent, tokens)) == 1  # exactly one decision changed
        evo.tell(tokens, _reward(tokens))
        told.append(tokens)
        # aging: the population is the last 4 told, whatever their rewards
        assert [t for t, _ in evo.population] == told[-4:]


def test_evolution_never_adds_a_failed_child():
    evo = RegularizedEvolution(get_space("layers-tiny"), seed=0, population_size=2, sample_size=1)
    t, _ = evo.ask()
    evo.tell(t, None)
    assert len(evo.population) == 0


@pytest.mark.parametrize("name", ["reinforce", "random", "evolution"])
def test_state_dict_continues_exactly(name):
    space = get_space("layers-tiny")
    a = get_strategy(name, space, seed=3, **({"population_size": 5, "sample_size": 2} if name == "evolution" else {}))
    for _ in range(12):
        t, info = a.ask()
        a.tell(t, _reward(t), info)
    b = get_strategy(name, space, seed=99, **({"population_size": 5, "sample_size": 2} if name == "evolution" else {}))
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for _ in range(15):
        ta, ia = a.ask()
        tb, ib = b.ask()
        assert ta == tb
        a.tell(ta, _reward(ta), ia)
        b.tell(tb, _reward(tb), ib)


def test_reinforce_update_moves_probability_towards_a_better_than_baseline_sample():
    space = get_space("layers-tiny")
    s = get_strategy("reinforce", space, seed=0, batch_size=2, entropy_weight=0.0)
    good, bad = (1,) * 9, (0,) * 9
    s.baseline = 0.5
    before_good, _ = s.controller.log_prob(good)
    before_bad, _ = s.controller.log_prob(bad)
    s.tell(good, 0.9)
    s.tell(bad, 0.1)
    assert s.updates == 1
    after_good, _ = s.controller.log_prob(good)
    after_bad, _ = s.controller.log_prob(bad)
    assert after_good > before_good and after_bad < before_bad
    # the moving-average baseline: 0.9 * (0.9 * 0.5 + 0.1 * 0.9) + 0.1 * 0.1
    assert s.baseline == pytest.approx(0.9 * (0.9 * 0.5 + 0.1 * 0.9) + 0.1 * 0.1)


@pytest.mark.parametrize("name,options,match", [
    ("annealing", {}, "unknown search strategy"),
    ("reinforce", {"lr": 0}, "lr"),
    ("reinforce", {"baseline_decay": 1.0}, "baseline_decay"),
    ("evolution", {"population_size": 3, "sample_size": 5}, "cannot exceed"),
    ("random", {"lr": 0.1}, "unexpected keyword"),
])
def test_bad_strategy_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_strategy(name, get_space("layers-tiny"), **options)
