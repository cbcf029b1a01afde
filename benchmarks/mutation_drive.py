"""Run mutmut's mutants against a chosen set of tests in one process.

mutmut's own runner first runs the whole test selection once to learn which tests
cover which function (on this 2-core machine under load: about 15 minutes per start),
and the PyTorch profiler does not run in its forked workers (every mutant of
``anatomy/measure.py`` times out there). This script reuses the mutants mutmut wrote
(``mutmut run`` once, stopped after it has generated ``mutants/``) and switches them
on one at a time through mutmut's ``MUTANT_UNDER_TEST`` variable, running the given
tests with ``-x`` in this process::

    cd mutants && PYTHONPATH=$PWD python ../benchmarks/mutation_drive.py cnnlab/bench/stats.py.meta \\
        cnnlab.bench.stats. out.json tests/bench/test_bench_stats.py

(``mutants/tests`` is mutmut's copy of the tests: copy a test you change since into it.)

On ``bench/stats.py`` it gave mutmut's own result (140 mutants, 105 killed, 35
survived before the tests of the mutation study). A narrower test selection can only
under-count kills. ``ONLY=name1,name2`` runs just those mutants.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

TIMEOUT_S = 120


def _timeout(*_):
    raise KeyboardInterrupt("mutant timeout")


def run(name: str, tests: list[str]) -> tuple[int | str, float]:
    """pytest's exit code with mutant ``name`` switched on ("" = none), and the seconds it took."""
    os.environ["MUTANT_UNDER_TEST"] = name
    signal.alarm(TIMEOUT_S)
    t0 = time.time()
    try:
        rc: int | str = int(pytest.main(["-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", "--no-header",
                                         *tests]))
    except KeyboardInterrupt:
        rc = "timeout"
    signal.alarm(0)
    return rc, time.time() - t0


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    meta, prefix, out, tests = argv[0], argv[1], argv[2], argv[3:]
    names = [k for k in json.load(open(meta))["exit_code_by_key"] if k.startswith(prefix)]
    only = os.environ.get("ONLY")
    if only:
        names = [n for n in names if n in only.split(",")]
    signal.signal(signal.SIGALRM, _timeout)
    rc, _ = run("", tests)
    if rc != 0:
        print(f"the tests fail without any mutant (pytest exit {rc}): fix them first", file=sys.stderr)
        return 1
    results = {}
    for n in names:
        rc, seconds = run(n, tests)
        results[n] = {"rc": rc, "s": round(seconds, 1)}
        print(f"RESULT {n} {results[n]}", file=sys.stderr, flush=True)
    json.dump(results, open(out, "w"), indent=1)
    survived = [n for n, r in results.items() if r["rc"] == 0]
    print(f"{len(results)} mutants, {len(results) - len(survived)} killed, {len(survived)} survived: {survived}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
