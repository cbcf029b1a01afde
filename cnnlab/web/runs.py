"""Reading training runs through their files only.

A run is a folder written by ``cnnlab train``: ``config.json`` (the resolved config),
``metrics.jsonl`` (one JSON record per line, appended as the run goes: ``"kind":
"epoch"`` records with train_loss, train_top1, test_top1, lr, images_per_second, ...
and a final ``"kind": "results"``), ``results.json`` once it has finished, and the
checkpoints ``best.pt`` / ``last.pt``; with ``--layer-stats N`` also ``layers.jsonl``
(per-layer statistics, first-layer filters, top-k predictions; see
:mod:`cnnlab.train.layerstats`). Nothing here imports the trainer: the web view reads
what the trainer writes, as a script or a notebook would.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

__all__ = ["RunError", "find_runs", "resolve_run", "read_metrics", "run_summary", "MetricsTail", "layers_file",
           "read_layers", "LAYERS_FILE"]

RUN_FILES = ("config.json", "metrics.jsonl")
LAYERS_FILE = "layers.jsonl"  # written by `cnnlab train --layer-stats N`
MAX_DEPTH = 3          # runs are looked for this many folders below the runs folder
RUNNING_WINDOW_S = 120  # a run without results whose metrics changed this recently is "running"


class RunError(ValueError):
    """An unknown run, or a path that is not one."""


def _is_run(path: Path) -> bool:
    return any((path / f).is_file() for f in RUN_FILES)


def find_runs(root: Path) -> list[Path]:
    """Every run folder under ``root`` (not following symbolic links), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        if depth > 0 and _is_run(here):
            found.append(here)
            dirnames[:] = []  # a run's own subfolders (tensorboard, ...) are not runs
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < MAX_DEPTH else []
    return sorted(found, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    times = [(path / f).stat().st_mtime for f in ("metrics.jsonl", "config.json", "results.json") if (path / f).exists()]
    return max(times) if times else path.stat().st_mtime


def resolve_run(root: Path, run_id: str) -> Path:
    """The folder of run ``run_id`` (a path relative to ``root``); never a path outside it."""
    root = Path(root).resolve()
    parts = [p for p in run_id.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or p.startswith(".") for p in parts) or len(parts) > MAX_DEPTH:
        raise RunError(f"no run {run_id!r}")
    path = root.joinpath(*parts)
    if path.is_symlink() or not path.is_dir():
        raise RunError(f"no run {run_id!r}")
    real = path.resolve()
    if real != root and root not in real.parents:
        raise RunError(f"no run {run_id!r}")
    if not _is_run(real):
        raise RunError(f"{run_id!r} is not a run folder (no config.json or metrics.jsonl)")
    return real


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_metrics(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete JSON lines of ``path`` from byte ``offset``; returns (records, new offset).

    A line still being written (no newline yet) is left for the next read; a line
    that is not JSON is skipped."""
    records: list[dict] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return records, offset
    end = data.rfind(b"\n")
    if end < 0:
        return records, offset
    for line in data[: end + 1].splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records, offset + end + 1


def run_summary(root: Path, path: Path) -> dict[str, Any]:
    """What the runs table shows about one run."""
    root = Path(root).resolve()
    config = _read_json(path / "config.json") or {}
    cfg = config.get("config", config) if isinstance(config, dict) else {}
    results = _read_json(path / "results.json")
    records, _ = read_metrics(path / "metrics.jsonl")
    epochs = [r for r in records if r.get("kind") == "epoch"]
    last = epochs[-1] if epochs else {}
    finished = isinstance(results, dict) or any(r.get("kind") == "results" for r in records)
    mtime = _mtime(path)
    if finished:
        status = "finished"
    elif time.time() - mtime < RUNNING_WINDOW_S:
        status = "running"
    else:
        status = "stopped"
    planned = (cfg.get("overrides") or {}).get("epochs") if isinstance(cfg, dict) else None
    test = (results or {}).get("test") or {}
    # the best epoch is chosen on validation when the trainer holds out a validation split
    key = "val_top1" if any("val_top1" in r for r in epochs) else "test_top1"
    best = [r.get(key) for r in epochs if isinstance(r.get(key), (int, float))]
    res_best = (results or {}).get("best_val_top1", (results or {}).get("best_top1"))
    return {
        "id": path.relative_to(root).as_posix(),
        "model": cfg.get("model") or (results or {}).get("model"),
        "dataset": cfg.get("dataset") or (results or {}).get("dataset"),
        "recipe": cfg.get("recipe"),
        "status": status,
        "epochs_done": len(epochs),
        "epochs_planned": planned,
        "test_top1": test.get("top1", last.get("test_top1")),
        "best_top1": res_best if res_best is not None else (max(best) if best else None),
        "best_on": "validation" if key == "val_top1" else "test",
        "val_top1": last.get("val_top1"),
        "train_loss": last.get("train_loss"),
        "images_per_second": (results or {}).get("images_per_second", last.get("images_per_second")),
        "wall_seconds": (results or {}).get("wall_seconds"),
        "checkpoint": next((n for n in ("best.pt", "last.pt") if (path / n).is_file()), None),
        "modified": mtime,
    }


def layers_file(run: Path) -> Path | None:
    """The run's ``layers.jsonl`` if it is a regular file in the run folder (not a link), else None."""
    path = Path(run) / LAYERS_FILE
    if path.is_symlink() or not path.is_file() or path.resolve().parent != Path(run).resolve():
        return None
    return path


def read_layers(run: Path) -> list[dict]:
    """Every complete record of the run's ``layers.jsonl`` (none without one), JSON-safe."""
    path = layers_file(run)
    if path is None:
        return []
    records, _ = read_metrics(path)
    return [deep_clean(r) for r in records]


class MetricsTail:
    """Follows a run's ``metrics.jsonl`` (or ``layers.jsonl``) as it grows (the file may
    not exist yet, and a restarted run may truncate or replace it: then it is read again
    from the start). ``no_links``: a symbolic link there is not read."""

    def __init__(self, path: Path, no_links: bool = False):
        self.path = Path(path)
        self.offset = 0
        self.no_links = no_links

    def poll(self) -> tuple[list[dict], bool]:
        """(new records, restarted?)."""
        restarted = False
        if self.no_links and self.path.is_symlink():
            return [], False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        if size < self.offset:
            self.offset, restarted = 0, True
        records, self.offset = read_metrics(self.path, self.offset)
        return records, restarted

    def finished(self) -> bool:
        return (self.path.parent / "results.json").is_file()


def iter_lines(records: list[dict]) -> Iterator[str]:
    for r in records:
        yield json.dumps(r, allow_nan=False, default=str) if _finite(r) else json.dumps(_clean(r), default=str)


def _finite(r: dict) -> bool:
    return all(not (isinstance(v, float) and (v != v or v in (float("inf"), float("-inf")))) for v in r.values())


def _clean(r: dict) -> dict:
    return {k: (None if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) else v) for k, v in r.items()}


def deep_clean(value: Any) -> Any:
    """``value`` with every non-finite float, however deep, replaced by None (JSON has none)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: deep_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_clean(v) for v in value]
    return value
