"""A tabular benchmark: every architecture of a small space trained once, stored as data.

As NAS-Bench-101/201 do for their spaces (whose tables cannot be downloaded here), the
table of ``layers-tiny`` on ``digits`` (``tables/layers-tiny_digits.json``, built by
``benchmarks/search_table.py``, which records in the file how it was made) gives every
architecture's validation and test accuracy, so a strategy can be run over many seeds in
seconds: a trial is a look-up. The reward is the validation accuracy, as in a real
search; the test accuracy of the architecture a search picks is reported beside it.

:func:`compare` runs strategies over seeds on a table and summarises, as mean +- std over
seeds: the best validation accuracy found against the number of trials, the test accuracy
of the final choice, and the mean reward of the architectures sampled in each block of
``batch`` trials (for ``reinforce``, one block is one controller update).
"""
from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from cnnlab.search.spaces import SearchSpace, get_space
from cnnlab.search.strategies import get_strategy

__all__ = ["Table", "load_table", "table_path", "list_tables", "table_trial", "compare"]

TABLES = Path(__file__).parent / "tables"


def table_path(space: str, dataset: str) -> Path:
    return TABLES / f"{space}_{dataset}.json"


def list_tables() -> list[tuple[str, str]]:
    return [tuple(p.stem.split("_", 1)) for p in sorted(TABLES.glob("*_*.json"))]


class Table:
    """Every architecture of a space with its trained accuracies."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        data = json.loads(Path(path).read_text())
        self.space_name, self.dataset, self.how = data["space"], data["dataset"], data.get("how", {})
        self.space: SearchSpace = get_space(data["space"], **data.get("space_args", {}))
        self.entries = {int(e["index"]): e for e in data["entries"]}
        missing = self.space.num_architectures - len(self.entries)
        if missing:
            raise ValueError(f"table {path} is incomplete: {missing} of {self.space.num_architectures} "
                             "architectures missing (finish it with benchmarks/search_table.py)")

    def entry(self, tokens: Sequence[int]) -> dict[str, Any]:
        return self.entries[self.space.index(tokens)]

    def reward(self, tokens: Sequence[int]) -> float:
        return float(self.entry(tokens)["val"]["top1"])

    def best(self, by: str = "val") -> dict[str, Any]:
        return max(self.entries.values(), key=lambda e: e[by]["top1"])


@lru_cache(maxsize=8)
def _table(path: str) -> Table:
    return Table(path)


def load_table(space: str, dataset: str) -> Table:
    path = table_path(space, dataset)
    if not path.exists():
        have = ", ".join(f"--space {s} --dataset {d}" for s, d in list_tables()) or "none"
        raise ValueError(f"no tabular benchmark for space {space!r} on {dataset!r} (tables: {have}); "
                         "build one with benchmarks/search_table.py")
    return _table(str(path))


def table_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """A trial that looks the architecture up instead of training it."""
    e = _table(spec["table"]).entry(spec["tokens"])
    out = {"reward": float(e["val"]["top1"]), "val": e["val"], "params": e.get("params"), "seconds": 0.0}
    return out


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return m, math.sqrt(var)


def run_on_table(table: Table, strategy: str, seed: int, budget: int, **options: Any) -> list[Sequence[int]]:
    """One seeded search on the table; the tokens of each trial in order."""
    s = get_strategy(strategy, table.space, seed=seed, **options)
    sampled = []
    for _ in range(budget):
        tokens, info = s.ask()
        s.tell(tokens, table.reward(tokens), info)
        sampled.append(tokens)
    return sampled


def compare(space: str = "layers-tiny", dataset: str = "digits", strategies: Sequence[str] = ("reinforce", "random", "evolution"),
            seeds: int = 20, budget: int = 100, batch: int = 5, strategy_args: dict[str, dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """Each strategy over ``seeds`` seeds on the table; curves and final figures as mean and std."""
    if seeds < 2:
        raise ValueError(f"seeds must be at least 2 (a std needs two runs), got {seeds}")
    if budget < batch:
        raise ValueError(f"budget must be at least one block of {batch} trials, got {budget}")
    table = load_table(space, dataset)
    strategy_args = strategy_args or {}
    best_val = table.best("val")
    out: dict[str, Any] = {
        "space": space, "dataset": dataset, "seeds": seeds, "budget": budget, "batch": batch,
        "table": {"path": Path(table.path).name, "architectures": len(table.entries), "how": table.how,
                  "best_val": best_val["val"]["top1"], "best_val_test": best_val["test"]["top1"],
                  "best_test": table.best("test")["test"]["top1"],
                  "mean_val": _mean_std([e["val"]["top1"] for e in table.entries.values()])[0]},
        "strategies": {},
    }
    for name in strategies:
        t0 = time.perf_counter()
        curves, blocks, finals_val, finals_test = [], [], [], []
        for seed in range(seeds):
            sampled = run_on_table(table, name, seed, budget, **strategy_args.get(name, {}))
            rewards = [table.reward(t) for t in sampled]
            running, curve = -1.0, []
            for r in rewards:
                running = max(running, r)
                curve.append(running)
            curves.append(curve)
            blocks.append([sum(rewards[i:i + batch]) / batch for i in range(0, budget - batch + 1, batch)])
            chosen = max(range(budget), key=lambda i: (rewards[i], -i))
            finals_val.append(rewards[chosen])
            finals_test.append(float(table.entry(sampled[chosen])["test"]["top1"]))
        n_blocks = len(blocks[0])
        out["strategies"][name] = {
            "options": strategy_args.get(name, {}),
            "best_so_far": [_mean_std([c[t] for c in curves]) for t in range(budget)],
            "block_mean_reward": [_mean_std([b[k] for b in blocks]) for k in range(n_blocks)],
            "final_val": _mean_std(finals_val), "final_test": _mean_std(finals_test),
            "found_best": sum(v >= best_val["val"]["top1"] for v in finals_val),
            "seconds": time.perf_counter() - t0,
        }
    return out


def format_compare(res: dict[str, Any]) -> str:
    """The comparison as a Markdown table."""
    tb = res["table"]
    budget = res["budget"]
    marks = [m for m in (10, 25, 50, 100, 200, 400) if m < budget] + [budget]
    lines = [f"{res['space']} on {res['dataset']}: {tb['architectures']} architectures; best validation "
             f"{100 * tb['best_val']:.2f}% (its test {100 * tb['best_val_test']:.2f}%), mean {100 * tb['mean_val']:.2f}%. "
             f"{res['seeds']} seeds, mean ± std.", "",
             "| strategy | " + " | ".join(f"best val @{m}" for m in marks) +
             " | test of final choice | found the best | reward, first block → last block |",
             "|---|" + "---|" * (len(marks) + 3)]
    for name, s in res["strategies"].items():
        cells = [f"{100 * s['best_so_far'][m - 1][0]:.2f} ± {100 * s['best_so_far'][m - 1][1]:.2f}" for m in marks]
        b0, b1 = s["block_mean_reward"][0], s["block_mean_reward"][-1]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {100 * s['final_test'][0]:.2f} ± {100 * s['final_test'][1]:.2f} | "
                     f"{s['found_best']}/{res['seeds']} | {100 * b0[0]:.2f} ± {100 * b0[1]:.2f} → "
                     f"{100 * b1[0]:.2f} ± {100 * b1[1]:.2f} |")
    return "\n".join(lines)
