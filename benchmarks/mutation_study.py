"""Summarise a mutation study run with mutmut (``pip install -e .[mutation]``).

How to run one (the scope is ``[tool.mutmut]`` in pyproject.toml; see docs/testing.md)::

    mutmut run --max-children 2 "cnnlab.train.schedule.*"   # or no pattern: every file in scope
    python benchmarks/mutation_study.py                       # kill rate per file
    python benchmarks/mutation_study.py --survivors           # and the diff of each survivor

Each mutant is one small change (``//`` -> ``/``, ``<`` -> ``<=``, a constant +1, a call argument
dropped, ...) that mutmut makes to a copy of the package under ``mutants/``; it is *killed* when
at least one test of the fast suite fails with it. A mutant that only rewrites the text of a
string (an error message, a dictionary key) is counted apart as ``string``: many of them change
what a user reads, not what is computed.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tokenize
from collections import Counter, defaultdict
from pathlib import Path

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "type check", -11: "segfault", -9: "segfault", None: "not checked"}


def _without_strings(code: str) -> str:
    """The code with every string literal blanked (tokens joined by spaces)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            out.append('""' if tok.type == tokenize.STRING else tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return code
    return " ".join(out)


def _diff(name: str) -> str:
    r = subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True)
    return r.stdout


def _is_string_only(diff: str) -> bool:
    old = "\n".join(l[1:] for l in diff.splitlines() if l.startswith("-") and not l.startswith("---"))
    new = "\n".join(l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++"))
    return bool(old) and _without_strings(old.strip()) == _without_strings(new.strip())


def collect(root: Path) -> dict[str, dict[str, int | None]]:
    by_file: dict[str, dict[str, int | None]] = {}
    for meta in sorted(root.glob("**/*.py.meta")):
        source = str(meta.relative_to(root))[: -len(".meta")]
        by_file[source] = json.loads(meta.read_text())["exit_code_by_key"]
    return by_file


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", default="mutants", help="mutmut's working folder (default: mutants)")
    p.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    p.add_argument("--match", default="", help="only mutants whose name contains this text")
    p.add_argument("--json", help="also write the table here")
    a = p.parse_args(argv)
    root = Path(a.mutants)
    if not root.is_dir():
        print(f"no {root}/ here: run `mutmut run` first (see docs/testing.md)", file=sys.stderr)
        return 2
    table = {}
    print(f"{'file':44s} {'mutants':>7s} {'killed':>7s} {'survived':>8s} {'(string)':>8s} {'other':>6s} {'kill %':>7s}")
    total = Counter()
    survivors = []
    for source, codes in collect(root).items():
        codes = {k: v for k, v in codes.items() if a.match in k}
        counts = Counter(STATUS.get(v, "suspicious") for v in codes.values())
        counts.pop("not checked", None)
        n = sum(counts.values())
        if not n:
            continue
        surv = [k for k, v in codes.items() if STATUS.get(v) == "survived"]
        diffs = {k: _diff(k) for k in surv}
        strings = sum(_is_string_only(d) for d in diffs.values())
        other = n - counts["killed"] - counts["survived"]
        row = {"mutants": n, "killed": counts["killed"], "survived": counts["survived"],
               "survived_string_only": strings, "other": other}
        table[source] = row
        total.update(row)
        print(f"{source:44s} {n:7d} {counts['killed']:7d} {counts['survived']:8d} {strings:8d} {other:6d} "
              f"{100 * counts['killed'] / n:6.1f}%")
        survivors += [(k, d) for k, d in diffs.items() if not _is_string_only(d)]
    if total["mutants"]:
        t = total
        print(f"{'all':44s} {t['mutants']:7d} {t['killed']:7d} {t['survived']:8d} {t['survived_string_only']:8d} "
              f"{t['other']:6d} {100 * t['killed'] / t['mutants']:6.1f}%")
        beyond = t["mutants"] - t["survived_string_only"]
        if beyond:
            print(f"kill rate without string-only mutants: {100 * t['killed'] / beyond:.1f}% of {beyond}")
    if a.survivors:
        for name, d in survivors:
            print(f"\n## {name}\n{d}")
    if a.json:
        Path(a.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
