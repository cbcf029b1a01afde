"""Architecture search: a learned controller (Zoph & Le 2016), NASNet's cell space
(Zoph et al. 2017), random search and regularized evolution (Real et al. 2019).

    from cnnlab.search import SearchConfig, run_search
    results = run_search(SearchConfig(space="nasnet", strategy="reinforce", dataset="digits", budget=20),
                         out="runs/search-nasnet")

A search is a space (:mod:`~cnnlab.search.spaces`), a strategy
(:mod:`~cnnlab.search.strategies`) and a trial runner (:mod:`~cnnlab.search.executors`:
local processes or Ray), driven by :func:`~cnnlab.search.run.run_search`. The command
line is ``cnnlab search run|show|export|compare|spaces``; docs/search.md tells the story.
"""
import importlib

# Where each public name lives; imported on first use, so `cnnlab search --help` does not load torch.
_WHERE = {
    "SearchConfig": "run", "run_search": "run", "load_trials": "run",
    "SearchSpace": "spaces", "Decision": "spaces", "LayersSpace": "spaces", "NasnetSpace": "spaces",
    "SPACES": "spaces", "get_space": "spaces", "list_spaces": "spaces",
    "Strategy": "strategies", "Reinforce": "strategies", "RandomSearch": "strategies",
    "RegularizedEvolution": "strategies", "STRATEGIES": "strategies", "get_strategy": "strategies",
    "Controller": "controller", "reinforce_loss": "controller",
    "export_architecture": "export", "read_architecture": "export", "build_architecture": "export",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"cnnlab.search.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cnnlab.search' has no attribute {name!r}")


__all__ = [
    "SearchConfig", "run_search", "load_trials",
    "SearchSpace", "Decision", "LayersSpace", "NasnetSpace", "SPACES", "get_space", "list_spaces",
    "Strategy", "Reinforce", "RandomSearch", "RegularizedEvolution", "STRATEGIES", "get_strategy",
    "Controller", "reinforce_loss",
    "export_architecture", "read_architecture", "build_architecture",
]
