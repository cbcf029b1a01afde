"""The search loop: ask the strategy, run trials, tell it the rewards, checkpoint, repeat.

    from cnnlab.search import SearchConfig, run_search
    results = run_search(SearchConfig(space="layers", strategy="reinforce", dataset="digits", budget=20),
                         out="runs/search-layers")

A search directory holds

* ``search.json`` — the settings (and versions) the search was started with;
* ``state.pt`` — the checkpoint: the strategy's whole state (controller weights,
  optimizer, baseline, population, random-number generators) and the trial history,
  rewritten atomically after every ask and every result;
* ``trials.jsonl`` — one line per finished trial (what ``cnnlab search show`` reads);
* ``trials/<id>/`` — each trial's training run (``cnnlab.train`` run directory) and log;
* ``results.json`` — the best architectures and the final choice's evaluation.

Resume (``resume=True``): a trial asked for but not finished when the search was killed
is run again with the same id and architecture; a finished trial is never rerun; asks
after the checkpoint are repeated exactly, because the generators are in the checkpoint.
So no trial is lost or repeated.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cnnlab.search.executors import make_executor
from cnnlab.search.spaces import get_space
from cnnlab.search.strategies import get_strategy
from cnnlab.search.trial import TRIAL_FN

__all__ = ["SearchConfig", "run_search", "load_trials", "load_config", "BACKENDS"]

BACKENDS = ("local", "ray")
STATE_VERSION = 1


@dataclass
class SearchConfig:
    """What to search (these must match on ``--resume``) and how to run it (these may change)."""

    space: str = "layers"
    strategy: str = "reinforce"
    dataset: str = "digits"
    budget: int = 20
    seed: int = 0
    space_args: dict[str, Any] = field(default_factory=dict)
    strategy_args: dict[str, Any] = field(default_factory=dict)
    # how each trial trains (cnnlab.train.fit)
    recipe: str = "fast"
    epochs: int = 10
    batch_size: int | None = 64
    lr: float | None = None
    val_fraction: float = 0.1
    train_samples: int | None = None
    image_size: int | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    tabular: bool = False  # rewards from the stored table (cnnlab.search.tabular), no training
    trial_fn: str = TRIAL_FN
    final_eval: bool = True  # retrain the best architecture once and evaluate it on test
    # how to run (may change on resume)
    workers: int = 1
    backend: str = "local"
    address: str | None = None
    trial_timeout: float | None = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    device: str = "cpu"
    data_dir: str | None = None

    RUNTIME = ("budget", "workers", "backend", "address", "trial_timeout", "cpus_per_trial", "gpus_per_trial",
               "device", "data_dir", "final_eval")

    def validate(self) -> "SearchConfig":
        for name in ("budget", "workers", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.trial_timeout is not None and not (self.trial_timeout > 0 and math.isfinite(self.trial_timeout)):
            raise ValueError(f"trial_timeout must be a positive number of seconds, got {self.trial_timeout!r}")
        if self.address and self.backend != "ray":
            raise ValueError("--address is for --backend ray")
        if not (self.cpus_per_trial > 0 and math.isfinite(self.cpus_per_trial)):  # NaN fails both
            raise ValueError(f"cpus_per_trial must be a positive number, got {self.cpus_per_trial!r}")
        if not (self.gpus_per_trial >= 0 and math.isfinite(self.gpus_per_trial)):
            raise ValueError(f"gpus_per_trial must be a number >= 0, got {self.gpus_per_trial!r}")
        for name in ("batch_size", "train_samples", "image_size"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        # every trial trains with this recipe and these numbers: a bad one fails here, not in every trial
        from cnnlab.train.recipes import get_recipe

        get_recipe(self.recipe, **{k: getattr(self, k) for k in ("epochs", "batch_size", "lr")
                                   if getattr(self, k) is not None})
        get_strategy(self.strategy, get_space(self.space, **self.space_args), seed=self.seed, **self.strategy_args)
        if not self.tabular:
            from cnnlab import data as cdata

            cdata.dataset_info(self.dataset)  # unknown dataset: a clear error now, not in every trial
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _save_state(out: Path, state: dict[str, Any]) -> None:
    tmp = out / "state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / "state.pt")


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_trials(out: str | Path) -> list[dict[str, Any]]:
    """Every trial of the search in ``out`` (finished ones, and any still running), by id."""
    path = Path(out) / "state.pt"
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a search directory (no state.pt)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    return sorted(state["trials"].values(), key=lambda t: t["id"])


def load_config(out: str | Path) -> SearchConfig:
    """The settings of the search in ``out``."""
    path = Path(out) / "state.pt"
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a search directory (no state.pt)")
    return SearchConfig(**torch.load(path, map_location="cpu", weights_only=False)["config"])


def _resume(cfg: SearchConfig, out: Path) -> tuple[SearchConfig, dict[str, Any]]:
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
    old = SearchConfig(**state["config"])
    mine, theirs = cfg.identity(), old.identity()
    differ = [k for k in mine if mine[k] != theirs.get(k)]
    if differ:
        detail = ", ".join(f"{k} {mine[k]!r} (the run has {theirs.get(k)!r})" for k in differ)
        raise ValueError(f"--resume: {out} was searched with other settings: {detail}")
    done = sum(t["status"] != "running" for t in state["trials"].values())
    if cfg.budget < done:
        raise ValueError(f"--resume: the run already has {done} finished trials; --budget {cfg.budget} is less")
    return cfg, state


def run_search(cfg: SearchConfig, out: str | Path, *, resume: bool = False,
               log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run (or resume) a search; returns the dict written to ``results.json``."""
    log = log or (lambda line: None)
    cfg.validate()
    out = Path(out)
    if resume:
        if not (out / "state.pt").exists():
            raise FileNotFoundError(f"--resume: nothing to resume in {out} (no state.pt)")
        cfg, state = _resume(cfg, out)
    else:
        if (out / "state.pt").exists():
            raise ValueError(f"{out} already holds a search; pass --resume to continue it, or another --out")
        state = None
    space = get_space(cfg.space, **cfg.space_args)
    strategy = get_strategy(cfg.strategy, space, seed=cfg.seed, **cfg.strategy_args)
    table = None
    if cfg.tabular:
        from cnnlab.search.tabular import load_table

        table = load_table(cfg.space, cfg.dataset)

    # The executor first: a Ray address that does not answer fails here, before anything is written.
    fn = "cnnlab.search.tabular:table_trial" if table is not None else cfg.trial_fn
    executor = make_executor("inline" if table is not None else cfg.backend, fn, workers=cfg.workers,
                             scratch=out / "logs", timeout=cfg.trial_timeout, address=cfg.address,
                             cpus_per_trial=cfg.cpus_per_trial, gpus_per_trial=cfg.gpus_per_trial)
    try:
        if state is None:
            from cnnlab.train import env

            out.mkdir(parents=True, exist_ok=True)
            state = {"version": STATE_VERSION, "config": cfg.to_dict(), "trials": {}, "next_id": 0, "finished": 0,
                     "strategy": strategy.state_dict()}
            record = {"config": cfg.to_dict(), "space": space.describe() if space.num_architectures < 1e6 else
                      {"space": space.name, "args": space.args, "num_decisions": len(space.decisions),
                       "num_architectures": space.num_architectures},
                      "versions": env.versions(), "machine": env.machine(), "started": _now()}
            (out / "search.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
            (out / "trials.jsonl").unlink(missing_ok=True)
            _save_state(out, state)
        else:
            strategy.load_state_dict(state["strategy"])
            state["config"] = cfg.to_dict()
            # trials.jsonl is a view of the checkpoint: rewrite it (a kill may have come between the two writes)
            finished = sorted((t for t in state["trials"].values() if t["status"] != "running"), key=lambda t: t["order"])
            (out / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in finished))
            log(f"resuming {out}: {state['finished']} trial(s) finished, "
                f"{sum(t['status'] == 'running' for t in state['trials'].values())} to rerun")
        trials: dict[int, dict[str, Any]] = state["trials"]

        def spec_for(trial: dict[str, Any], **extra: Any) -> dict[str, Any]:
            if table is not None:
                return {"table": table.path, "tokens": trial["tokens"], **extra}
            run_dir = out / "trials" / f"{trial['id']:04d}" if "out" not in extra else Path(extra.pop("out"))
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an unfinished run of a killed search: start it again
            return {"space": cfg.space, "space_args": cfg.space_args, "tokens": list(trial["tokens"]),
                    "dataset": cfg.dataset, "recipe": cfg.recipe, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                    "lr": cfg.lr, "val_fraction": cfg.val_fraction, "train_samples": cfg.train_samples,
                    "image_size": cfg.image_size, "data_options": cfg.data_options, "data_dir": cfg.data_dir,
                    "device": cfg.device, "threads": max(1, int(cfg.cpus_per_trial)), "seed": cfg.seed,
                    "out": str(run_dir), **extra}

        t_start = time.perf_counter()
        in_flight: set[int] = set()
        while state["finished"] < cfg.budget:
            while len(in_flight) < executor.capacity:
                # a trial a killed search had started runs again, same id, same architecture
                waiting = [t for t in trials.values() if t["status"] == "running" and t["id"] not in in_flight]
                if waiting:
                    trial = min(waiting, key=lambda t: t["id"])
                elif state["next_id"] < cfg.budget:
                    tokens, info = strategy.ask()
                    trial = {"id": state["next_id"], "tokens": list(tokens), "key": space.key(tokens),
                             "status": "running", "info": info, "asked": _now()}
                    trials[trial["id"]] = trial
                    state["next_id"] += 1
                    state["strategy"] = strategy.state_dict()
                    _save_state(out, state)  # the ask is recorded before the trial starts
                else:
                    break
                executor.submit(trial["id"], spec_for(trial))
                in_flight.add(trial["id"])
            if not in_flight:
                break
            for tid, outcome in executor.wait(1.0):
                in_flight.discard(tid)
                trial = trials[tid]
                ok = outcome["status"] == "ok"
                result = outcome.get("result", {}) if ok else {}
                if ok and not isinstance(result.get("reward"), (int, float)):
                    ok, outcome = False, {"error": "the trial returned no numeric 'reward'"}
                reward = float(result["reward"]) if ok else None
                strategy.tell(trial["tokens"], reward, trial.get("info"))
                trial.update(status="ok" if ok else "failed", reward=reward, order=state["finished"],
                             finished=_now(), **({k: v for k, v in result.items() if k not in ("reward", "test")}
                                                 if ok else {"error": outcome.get("error", "unknown error")}))
                state["finished"] += 1
                state["strategy"] = strategy.state_dict()
                _save_state(out, state)
                _append_jsonl(out / "trials.jsonl", {k: v for k, v in trial.items()})
                done = [t for t in trials.values() if t["status"] == "ok"]
                best = max((t["reward"] for t in done), default=float("nan"))
                what = f"reward {reward:.4f}" if ok else f"FAILED ({trial['error']})"
                log(f"trial {tid} ({state['finished']}/{cfg.budget} done)  {what}  best {best:.4f}  "
                    f"[{trial['key']}]  {result.get('seconds', 0.0):.1f}s")
        # The final choice, evaluated once on test.
        results = _finish(cfg, out, state, space, executor, spec_for, table, log)
        results["search_seconds"] = time.perf_counter() - t_start
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        return results
    except KeyboardInterrupt:
        log(f"interrupted: {state['finished'] if state else 0} trial(s) finished and saved in {out}; "
            "the same command with --resume continues the search")
        raise
    finally:
        executor.close()


def _finish(cfg, out, state, space, executor, spec_for, table, log) -> dict[str, Any]:
    trials = sorted(state["trials"].values(), key=lambda t: t["id"])
    ok = [t for t in trials if t["status"] == "ok"]
    ranked = sorted(ok, key=lambda t: (-t["reward"], t["id"]))
    results: dict[str, Any] = {
        "space": cfg.space, "strategy": cfg.strategy, "dataset": cfg.dataset, "budget": cfg.budget,
        "trials": len(trials), "failed": sum(t["status"] == "failed" for t in trials),
        "best": [{"id": t["id"], "reward": t["reward"], "tokens": t["tokens"], "arch": space.decode(t["tokens"])}
                 for t in ranked[:5]],
        "reward": "validation top-1 (held-out split of the training set)",
    }
    if not ranked:
        log("no trial succeeded: nothing to evaluate")
        return results
    best = ranked[0]
    final = state.get("final")
    if final is None and cfg.final_eval:
        if table is not None:
            final = {k: v for k, v in table.entry(best["tokens"]).items() if k in ("val", "test")}
        else:
            log(f"final: retraining the best architecture (trial {best['id']}) and evaluating it once on test")
            executor.submit(-1, spec_for(best, with_test=True, out=str(out / "final")))
            while True:
                done = executor.wait(5.0)
                if done:
                    outcome = done[0][1]
                    break
            if outcome["status"] != "ok":
                final = {"error": outcome.get("error")}
            else:
                final = {k: outcome["result"][k] for k in ("val", "test") if k in outcome["result"]}
        final["trial"] = best["id"]
        state["final"] = final
        _save_state(out, state)
    if final is not None:
        results["final"] = final
        if "test" in final:
            log(f"best: trial {best['id']}  validation {best['reward']:.4f}  test {final['test']['top1']:.4f}")
    return results
