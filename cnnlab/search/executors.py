"""Where trials run: in this process, in local worker processes, or as Ray tasks.

Every executor has the same three calls: ``submit(trial_id, spec)``, ``wait(seconds)``
(the trials that ended since the last call, as ``(trial_id, outcome)``) and ``close()``.
An outcome is ``{"status": "ok", "result": {...}}`` or ``{"status": "failed", "error":
"..."}``: an exception in the trial, a crash of its process (segfault, out of memory,
``os._exit``) and a trial that runs past ``timeout`` all end as ``failed``, and the search
goes on.

* :class:`InlineExecutor` runs each trial at once in this process (table look-ups).
* :class:`ProcessExecutor` runs up to ``workers`` trials at a time, each in its own
  process (forked from a ``forkserver`` that has torch and cnnlab loaded already); a
  trial that outlives its ``timeout`` is killed, and a trial process ends itself when the
  search process dies (so a killed search leaves no orphans behind).
* :class:`RayExecutor` submits each trial as a Ray task with its resources (``num_cpus``,
  ``num_gpus``), to a local Ray instance or a cluster (``address``).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from cnnlab.search.trial import resolve_trial_fn

__all__ = ["InlineExecutor", "ProcessExecutor", "RayExecutor", "make_executor", "check_ray_address"]


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _run(fn_path: str, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"status": "ok", "result": resolve_trial_fn(fn_path)(spec)}
    except Exception as exc:  # a trial's failure is data for the search, not an error of the search
        return {"status": "failed", "error": _error_line(exc), "traceback": traceback.format_exc()}


class InlineExecutor:
    """Run each trial to its end in this process, at submit time."""

    def __init__(self, fn_path: str):
        self.fn_path = fn_path
        self.done: list[tuple[int, dict[str, Any]]] = []

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, trial_id: int, spec: dict[str, Any]) -> None:
        self.done.append((trial_id, _run(self.fn_path, spec)))

    def wait(self, seconds: float) -> list[tuple[int, dict[str, Any]]]:
        done, self.done = self.done, []
        return done

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------- local processes


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(3)  # the search died: end this trial too


def _child(fn_path: str, spec: dict[str, Any], result_path: str, log_path: str, parent_pid: int, threads: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the search process to handle
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch

    torch.set_num_threads(threads)
    outcome = _run(fn_path, spec)
    if outcome["status"] == "failed":
        print(outcome.pop("traceback"), file=sys.stderr, flush=True)
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(outcome, f)
    os.replace(tmp, result_path)


_CONTEXT = None
# What the fork server imports once, so that a trial process starts with it loaded (torch, the
# trainer, the models, the data); for another trial function only that function's module.
_TRAIN_PRELOAD = ["torch", "torch._dynamo", "cnnlab.search.trial", "cnnlab.train", "cnnlab.models", "cnnlab.data",
                  "sklearn.datasets"]


def _context(fn_path: str):
    global _CONTEXT
    if _CONTEXT is None:
        from cnnlab.search.trial import TRIAL_FN

        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(_TRAIN_PRELOAD if fn_path == TRIAL_FN else [fn_path.partition(":")[0]])
    return _CONTEXT


class ProcessExecutor:
    """Up to ``workers`` trials at a time, one process each, killed after ``timeout`` seconds."""

    def __init__(self, fn_path: str, workers: int, scratch: Path, timeout: float | None = None,
                 threads_per_trial: int = 1):
        self.fn_path, self.workers, self.timeout = fn_path, workers, timeout
        self.scratch = Path(scratch)
        self.threads = threads_per_trial
        self.procs: dict[int, tuple[Any, float, Path, Path]] = {}

    @property
    def capacity(self) -> int:
        return self.workers

    def submit(self, trial_id: int, spec: dict[str, Any]) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        result, log = self.scratch / f"trial-{trial_id}.json", self.scratch / f"trial-{trial_id}.log"
        for p in (result, log):
            p.unlink(missing_ok=True)
        proc = _context(self.fn_path).Process(target=_child, args=(self.fn_path, spec, str(result), str(log), os.getpid(),
                                                       self.threads), daemon=True)
        proc.start()
        self.procs[trial_id] = (proc, time.monotonic(), result, log)

    def _outcome(self, proc, result: Path, log: Path) -> dict[str, Any]:
        if result.exists():
            return json.loads(result.read_text())
        code = proc.exitcode
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        return {"status": "failed", "error": f"the trial process {why}" + (f" ({tail[0][:300]})" if tail else "")}

    def wait(self, seconds: float) -> list[tuple[int, dict[str, Any]]]:
        end = time.monotonic() + seconds
        while True:
            done = []
            for tid, (proc, started, result, log) in list(self.procs.items()):
                if not proc.is_alive():
                    proc.join()
                    done.append((tid, self._outcome(proc, result, log)))
                elif self.timeout is not None and time.monotonic() - started > self.timeout:
                    proc.kill()
                    proc.join()
                    done.append((tid, {"status": "failed", "error": f"timed out after {self.timeout:g} s"}))
            for tid, _ in done:
                del self.procs[tid]
            if done or not self.procs or time.monotonic() >= end:
                return done
            time.sleep(0.05)

    def close(self) -> None:
        for proc, *_ in self.procs.values():
            proc.kill()
            proc.join()
        self.procs.clear()


# ------------------------------------------------------------------------------------- Ray


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Raise ValueError at once when nothing listens at a ``host:port`` / ``ray://host:port`` address.

    ``ray.init`` would otherwise retry for a long time before it gives up.
    """
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT (or 'auto')")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                         "start one with `ray start --head` or check the address") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray: pip install 'cnnlab[ray]'") from None
    return ray


class RayExecutor:
    """Each trial is a Ray task with ``num_cpus`` / ``num_gpus``; ``workers`` bounds how many are in flight."""

    def __init__(self, fn_path: str, workers: int, address: str | None = None, timeout: float | None = None,
                 num_cpus: float = 1, num_gpus: float = 0, local_cpus: int | None = None):
        ray = self.ray = _import_ray()
        self.fn_path, self.workers, self.timeout = fn_path, workers, timeout
        if address:
            check_ray_address(address)
        self.started_here = not ray.is_initialized()
        if self.started_here:
            kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
            if address and address != "local":
                kw["address"] = address
            else:
                kw["num_cpus"] = local_cpus or max(1, workers)
            try:
                ray.init(**kw)
            except ConnectionError as exc:
                raise ValueError(f"--address {address}: cannot join the Ray cluster: {_error_line(exc)}") from None
        self.remote = ray.remote(max_retries=0)(_run).options(num_cpus=num_cpus, num_gpus=num_gpus)
        self.refs: dict[Any, tuple[int, float]] = {}

    @property
    def capacity(self) -> int:
        return self.workers

    def submit(self, trial_id: int, spec: dict[str, Any]) -> None:
        self.refs[self.remote.remote(self.fn_path, spec)] = (trial_id, time.monotonic())

    def wait(self, seconds: float) -> list[tuple[int, dict[str, Any]]]:
        ray = self.ray
        if not self.refs:
            return []
        ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=seconds)
        if ready:  # and every other one that has ended by now
            ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        done = []
        for ref in ready:
            tid, _ = self.refs.pop(ref)
            try:
                outcome = ray.get(ref)
                outcome.pop("traceback", None)
            except Exception as exc:  # the worker died (RayTaskError, WorkerCrashedError, ...)
                outcome = {"status": "failed", "error": f"the Ray task failed: {_error_line(exc)}"}
            done.append((tid, outcome))
        if self.timeout is not None:
            for ref, (tid, started) in list(self.refs.items()):
                if time.monotonic() - started > self.timeout:
                    ray.cancel(ref, force=True)
                    del self.refs[ref]
                    done.append((tid, {"status": "failed", "error": f"timed out after {self.timeout:g} s"}))
        return done

    def close(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started_here:
            self.ray.shutdown()


def make_executor(backend: str, fn_path: str, *, workers: int, scratch: Path, timeout: float | None,
                  address: str | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0):
    if backend == "inline":
        return InlineExecutor(fn_path)
    if backend == "local":
        return ProcessExecutor(fn_path, workers, scratch, timeout, threads_per_trial=max(1, int(cpus_per_trial)))
    if backend == "ray":
        return RayExecutor(fn_path, workers, address, timeout, num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)
    raise ValueError(f"unknown backend {backend!r}; choose from local, ray")
