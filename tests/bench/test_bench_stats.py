"""Percentiles against a hand computation and NumPy; the timed loop on a fake clock."""
import numpy as np
import pytest

from cnnlab.bench.stats import is_stable, percentile, summarize, timed_loop


def test_percentiles_by_hand():
    xs = [float(v) for v in range(10, 0, -1)]  # 10..1, unsorted on purpose
    # (n-1)*p: p50 -> 4.5 -> 5 + 0.5*(6-5); p90 -> 8.1 -> 9 + 0.1*1; p99 -> 8.91 -> 9 + 0.91*1
    assert percentile(xs, 50) == pytest.approx(5.5)
    assert percentile(xs, 90) == pytest.approx(9.1)
    assert percentile(xs, 99) == pytest.approx(9.91)
    assert percentile(xs, 0) == 1 and percentile(xs, 100) == 10
    assert percentile([7.0], 99) == 7.0


def test_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    xs = list(rng.lognormal(size=137))
    for p in (50, 90, 99, 12.5):
        assert percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)))


def test_percentile_bad_input():
    with pytest.raises(ValueError, match="percentile of an empty sequence"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within 0-100, got 101"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="within 0-100, got -1"):
        percentile([1.0], -1)


def test_summarize():
    s = summarize([0.004, 0.001, 0.003, 0.002])
    assert s["runs"] == 4 and s["median_s"] == pytest.approx(0.0025) and s["min_s"] == 0.001
    assert s["mean_s"] == pytest.approx(0.0025) and s["total_s"] == pytest.approx(0.010)


def test_is_stable():
    assert is_stable([1.0, 1.0, 1.0, 1.0], 0.05)
    assert not is_stable([1.0, 1.0, 1.0], 0.05)  # too few runs to judge
    assert not is_stable([1.0, 1.0, 2.0, 2.0], 0.05)  # halves' medians 1 and 2
    assert is_stable([1.0, 1.02, 1.0, 1.03], 0.05)  # 1.01 vs 1.015: 0.5% apart


class FakeClock:
    """Time advances only when the step runs, by the next duration of a list."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = list(durations)
        self.steps = 0

    def __call__(self):
        return self.now

    def step(self):
        self.now += self.durations[self.steps]
        self.steps += 1


def test_timed_loop_stops_at_min_time_when_stable():
    clock = FakeClock([0.125] * 100)  # exact in binary
    times, stable = timed_loop(clock.step, min_time=1.0, clock=clock)
    assert len(times) == 8 and stable  # 8 x 0.125 = 1.0 s
    assert times == [0.125] * 8


def test_timed_loop_needs_min_runs():
    clock = FakeClock([2.0] * 100)
    times, _ = timed_loop(clock.step, min_time=1.0, min_runs=5, clock=clock)
    assert len(times) == 5  # 2 s each is past min_time at once, but five runs are the minimum


def test_timed_loop_drifting_median_runs_to_max_time():
    # 0.1, 0.2, 0.3, ...: the halves never agree; the loop stops at 4 x min_time:
    # 0.1 * k(k+1)/2 >= 4.0 first at k = 9 (4.5 s)
    clock = FakeClock([0.1 * k for k in range(1, 100)])
    times, stable = timed_loop(clock.step, min_time=1.0, clock=clock)
    assert len(times) == 9 and not stable


def test_timed_loop_settles_after_a_slow_start():
    # two slow runs, then steady. The first half (n // 2 runs) holds both slow runs, so its
    # median is 0.25 only once it has at least three 0.25s: n // 2 >= 5, first at n = 10.
    clock = FakeClock([1.0, 1.0] + [0.25] * 100)
    times, stable = timed_loop(clock.step, min_time=1.0, clock=clock)
    assert stable and len(times) == 10


def test_timed_loop_syncs_around_each_run():
    calls = []
    clock = FakeClock([0.5] * 10)
    timed_loop(lambda: (calls.append("step"), clock.step()), min_time=1.0, clock=clock,
               sync=lambda: calls.append("sync"), on_run=lambda: calls.append("sample"))
    assert calls[:4] == ["sync", "step", "sync", "sample"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 37])
def test_percentile_edges_match_numpy(n):
    rng = np.random.default_rng(n)
    xs = list(rng.normal(10.0, 3.0, size=n))
    for p in (0, 1, 25, 50, 62.5, 90, 99, 99.9, 100):
        assert percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)), rel=1e-12, abs=0)
    assert percentile([3.0, 1.0, 2.0, 2.0], 50) == float(np.percentile([3.0, 1.0, 2.0, 2.0], 50)) == 2.0


@pytest.mark.parametrize("n", [2, 3, 41])
def test_summarize_matches_numpy(n):
    rng = np.random.default_rng(100 + n)
    times = list(rng.lognormal(-5.0, 0.5, size=n))
    s = summarize(times)
    arr = np.array(times)
    assert s["runs"] == n
    assert s["median_s"] == pytest.approx(float(np.median(arr)))
    assert s["p90_s"] == pytest.approx(float(np.percentile(arr, 90)))
    assert s["p99_s"] == pytest.approx(float(np.percentile(arr, 99)))
    assert s["mean_s"] == pytest.approx(float(arr.mean()))
    assert s["std_s"] == pytest.approx(float(arr.std(ddof=1)))  # the sample standard deviation
    assert s["min_s"] == float(arr.min()) and s["total_s"] == pytest.approx(float(arr.sum()))


def test_summarize_one_run_and_none():
    s = summarize([0.5])
    assert s["runs"] == 1 and s["std_s"] == 0.0
    assert s["median_s"] == s["p90_s"] == s["p99_s"] == s["mean_s"] == s["min_s"] == s["total_s"] == 0.5
    with pytest.raises(ValueError, match="no timed runs"):
        summarize([])


def test_is_stable_at_the_tolerance_and_on_zero_times():
    # halves' medians 1 and 3, overall median 2: they differ by exactly 1.0 x the median
    assert is_stable([1.0, 1.0, 3.0, 3.0], 1.0)
    assert not is_stable([1.0, 1.0, 3.0, 3.0], 0.99)
    assert is_stable([0.0] * 6, 0.05)  # a clock too coarse to see the step: nothing drifts
    # with an odd count the middle run is in neither half: halves [1, 1] and [3, 5] (medians 1
    # and 4), overall median 1, so they differ by 3.0 x the median
    assert not is_stable([1.0, 1.0, 1.0, 3.0, 5.0], 2.9)
    assert is_stable([1.0, 1.0, 1.0, 3.0, 5.0], 3.0)


def test_timed_loop_default_max_time_is_at_least_min_time_plus_one():
    # min_time 0.25: max_time = max(4 x 0.25, 0.25 + 1) = 1.25. Drifting runs 0.1, 0.2, ...
    # never settle; 0.1 * k(k+1)/2 >= 1.25 first at k = 5 (1.5 s), while 1.0 s is reached at k = 4
    clock = FakeClock([0.1 * k for k in range(1, 100)])
    times, stable = timed_loop(clock.step, min_time=0.25, min_runs=1, clock=clock)
    assert len(times) == 5 and not stable


def test_timed_loop_explicit_limits():
    clock = FakeClock([0.1 * k for k in range(1, 100)])
    times, _ = timed_loop(clock.step, min_time=1.0, max_time=2.0, clock=clock)
    assert len(times) == 6  # 0.1 * 6 * 7 / 2 = 2.1 s, the first total at or past 2.0 s
    clock = FakeClock([0.1 * k for k in range(1, 100)])
    times, _ = timed_loop(clock.step, min_time=1.0, max_runs=3, clock=clock)
    assert len(times) == 3  # max_runs wins over min_runs and min_time
    clock = FakeClock([0.25] * 100)
    times, stable = timed_loop(clock.step, min_time=0.0, min_runs=4, clock=clock)
    assert len(times) == 4 and stable  # min_time 0 is allowed: the minimum runs, then stable
    with pytest.raises(ValueError, match="min_time must be >= 0, got -0.5"):
        timed_loop(clock.step, min_time=-0.5, clock=clock)


def test_timed_loop_default_min_runs_is_five():
    clock = FakeClock([2.0] * 100)
    times, stable = timed_loop(clock.step, min_time=1.0, clock=clock)
    assert len(times) == 5 and stable


def test_timed_loop_stops_at_max_time_exactly():
    # runs of 0.25, 0.5, 0.75, ... (exact in binary): the total is 1.5 s after three runs, which
    # is max_time itself; three runs are too few to judge stability
    clock = FakeClock([0.25 * k for k in range(1, 100)])
    times, stable = timed_loop(clock.step, min_time=1.0, min_runs=1, max_time=1.5, clock=clock)
    assert times == [0.25, 0.5, 0.75] and not stable


def test_timed_loop_times_each_run_between_syncs():
    calls = []
    clock = FakeClock([0.5] * 10)
    times, _ = timed_loop(lambda: (calls.append("step"), clock.step()), min_time=1.0, min_runs=4, clock=clock,
                          sync=lambda: calls.append("sync"), on_run=lambda: calls.append("sample"))
    assert calls == ["sync", "step", "sync", "sample"] * len(times)
    assert times == [0.5] * len(times) and len(times) == 4
