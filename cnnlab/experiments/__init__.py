"""The lecture's claims as experiments: runs, numbers, figures and a verdict.

    >>> import cnnlab.experiments as ex
    >>> ex.list_experiments()
    ['one-by-one', 'bottleneck', 'small-filters', 'degradation', ...]
    >>> results = ex.run_experiment("bottleneck", scale="smoke", out="runs/bottleneck")
    >>> results["verdict"]          # 'held', 'did not hold' or 'inconclusive'

Each experiment writes ``results.json``, ``report.md`` and its figures (PNG and SVG)
into its folder; ``resume=True`` continues an interrupted one without repeating the
finished runs. The command line is ``cnnlab experiment list`` and
``cnnlab experiment run NAME``.
"""
from cnnlab.experiments.core import (
    SCALES, Context, Experiment, Run, UnknownExperimentError, get_experiment, list_experiments,
    register_experiment, run_experiment,
)
from cnnlab.experiments.stats import HELD, INCONCLUSIVE, NOT_HELD, Check, combine, compare, exact, summarize

__all__ = [
    "run_experiment", "list_experiments", "get_experiment", "register_experiment", "Experiment", "Run",
    "Context", "SCALES", "UnknownExperimentError", "Check", "summarize", "compare", "exact", "combine",
    "HELD", "NOT_HELD", "INCONCLUSIVE",
]
