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
from cnnlab.search.controller import Controller, reinforce_loss
from cnnlab.search.export import build_architecture, export_architecture, read_architecture
from cnnlab.search.run import SearchConfig, load_trials, run_search
from cnnlab.search.spaces import SPACES, Decision, LayersSpace, NasnetSpace, SearchSpace, get_space, list_spaces
from cnnlab.search.strategies import STRATEGIES, RandomSearch, RegularizedEvolution, Reinforce, Strategy, get_strategy

__all__ = [
    "SearchConfig", "run_search", "load_trials",
    "SearchSpace", "Decision", "LayersSpace", "NasnetSpace", "SPACES", "get_space", "list_spaces",
    "Strategy", "Reinforce", "RandomSearch", "RegularizedEvolution", "STRATEGIES", "get_strategy",
    "Controller", "reinforce_loss",
    "export_architecture", "read_architecture", "build_architecture",
]
