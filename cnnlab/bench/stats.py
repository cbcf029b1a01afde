"""Timing statistics and the stopping rule of the timed loop.

Percentiles use linear interpolation between order statistics (NumPy's default
``"linear"`` method, Hyndman & Fan's definition 7): the p-th percentile of sorted
values x_0..x_{n-1} is x_k + (x_{k+1} - x_k) * f with k + f = (n - 1) * p / 100.
MLPerf reports p90/p99 latencies the same way; the number of timed runs is always
reported beside them, since a p99 of 20 runs is mostly the maximum.
"""
from __future__ import annotations

import math
import statistics
from typing import Callable, Sequence

__all__ = ["percentile", "summarize", "is_stable", "timed_loop"]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, linearly interpolated."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0-100, got {p}")
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100
    k = math.floor(pos)
    f = pos - k
    if k + 1 >= len(xs):
        return float(xs[-1])
    return float(xs[k] + (xs[k + 1] - xs[k]) * f)


def summarize(times: Sequence[float]) -> dict:
    """Median, p90, p99, mean, standard deviation, min and count of ``times`` (seconds)."""
    if not times:
        raise ValueError("no timed runs to summarize")
    return {
        "runs": len(times),
        "median_s": percentile(times, 50),
        "p90_s": percentile(times, 90),
        "p99_s": percentile(times, 99),
        "mean_s": statistics.fmean(times),
        "std_s": statistics.stdev(times) if len(times) > 1 else 0.0,
        "min_s": min(times),
        "total_s": math.fsum(times),
    }


def is_stable(times: Sequence[float], rel_tol: float) -> bool:
    """Whether the median has settled: the medians of the first and the second half of
    the runs differ by at most ``rel_tol`` of the overall median.

    A median that still drifts (the CPU clocking up, a cache warming, another process
    starting) shows as two halves that disagree; more runs are taken until they agree.
    """
    n = len(times)
    if n < 4:
        return False
    half = n // 2
    first, second = statistics.median(times[:half]), statistics.median(times[n - half:])
    overall = statistics.median(times)
    if overall <= 0:
        return True
    return abs(second - first) / overall <= rel_tol


def timed_loop(
    step: Callable[[], None],
    *,
    min_time: float,
    min_runs: int = 5,
    max_time: float | None = None,
    max_runs: int = 100_000,
    rel_tol: float = 0.05,
    clock: Callable[[], float],
    sync: Callable[[], None] = lambda: None,
    on_run: Callable[[], None] = lambda: None,
) -> tuple[list[float], bool]:
    """Run ``step`` and time each run with ``clock`` until the runs' total reaches
    ``min_time`` seconds, there are at least ``min_runs`` and the median is stable
    (:func:`is_stable`), or until ``max_time`` (default ``4 * min_time``, at least
    ``min_time + 1``) or ``max_runs`` runs. ``sync`` is called before each clock read
    (``torch.cuda.synchronize`` on a GPU) and ``on_run`` after each run (the energy
    meters sample there). Returns the run times and whether the median was stable.
    """
    if min_time < 0:
        raise ValueError(f"min_time must be >= 0, got {min_time}")
    if max_time is None:
        max_time = max(4 * min_time, min_time + 1.0)
    times: list[float] = []
    total = 0.0
    while True:
        sync()
        t0 = clock()
        step()
        sync()
        dt = clock() - t0
        on_run()
        times.append(dt)
        total += dt
        if len(times) >= max_runs:
            break
        if total >= min_time and len(times) >= min_runs:
            if is_stable(times, rel_tol) or total >= max_time:
                break
    return times, is_stable(times, rel_tol)
