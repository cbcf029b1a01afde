"""Benchmarks on your own hardware, and Canziani-style comparisons.

``cnnlab.bench.bench(models, batch_sizes, ...)`` measures latency (median, p90, p99,
number of runs), images per second, peak memory and, where a meter exists, energy per
image and average power, each model in its own subprocess, streaming JSONL.
``cnnlab.bench.compare(...)`` joins those results with ``cnnlab.analyze`` and the
published figures into tables and the figures of Canziani, Paszke & Culurciello,
"An Analysis of Deep Neural Network Models for Practical Applications" (2017,
arXiv:1605.07678).

Conventions, used everywhere: one multiply-add = one MAC = two FLOPs (torchvision's
"GFLOPS" figures are MACs); MACs count conv and linear layers, per image.
"""
# compare is imported here, not wrapped: importing the submodule cnnlab.bench.compare binds the
# package's name `compare` to that module, so a lazy wrapper was replaced by a module (not callable)
# as soon as anything imported it. The submodule imports only the standard library at load time.
from cnnlab.bench.compare import compare
from cnnlab.bench.export import to_csv
from cnnlab.bench.runner import DEFAULT_BATCH_SIZES, BenchConfig, bench, read_results
from cnnlab.bench.stats import percentile, summarize

__all__ = ["bench", "BenchConfig", "read_results", "to_csv", "percentile", "summarize", "DEFAULT_BATCH_SIZES",
           "compare"]

