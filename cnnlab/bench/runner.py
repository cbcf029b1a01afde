"""The sweep: every model in its own worker subprocess, results streamed to JSONL.

``bench(models, batch_sizes, ...)`` checks every argument before anything starts or
any file is written, then, per model, starts ``python -m cnnlab.bench.worker`` and
appends each record it sends to the JSONL file as soon as it arrives (one ``write``
and ``fsync`` per line). A worker that dies (a segfault, the kernel's out-of-memory
killer) costs the batch size it was measuring, which is recorded as ``crashed`` with
the signal or exit status; a new worker measures the batch sizes left. An
out-of-memory error inside the worker is recorded as ``oom`` and the sweep goes on
(Canziani et al.'s missing points at large batch sizes).

The file starts each session with an ``env`` record (versions, CPU, threads, GPU,
driver, settings). ``resume=True`` reads the file back and skips every (model, batch
size, settings) already recorded as ``ok`` or ``oom``; ``error``/``crashed`` ones are
measured again.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

from cnnlab.bench.worker import MARK

__all__ = ["BenchConfig", "bench", "read_results", "environment", "result_key", "DEFAULT_BATCH_SIZES",
           "ALLOCATOR_ENV"]

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
#: glibc settings of the worker (unless set by the user): keep freed memory in the heap (trim
#: threshold 1 GiB) and serve blocks up to 32 MiB from it (mmap threshold fixed at its maximum),
#: as a long-running process that has seen larger blocks does. Without them a fresh process hands
#: its activations back to the system after every run and page-faults them in again on the next
#: (squeezenet1_1 at batch 1 on the project's VM: ~1,300 page faults and ~12% more time per run).
#: The peak-memory baseline still starts from a trimmed heap (malloc_trim before each point).
ALLOCATOR_ENV = {"MALLOC_TRIM_THRESHOLD_": str(2**30), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}
_SETTINGS = ("mode", "precision", "device", "input_size", "channels_last", "compile", "threads")


@dataclass
class BenchConfig:
    """Settings of one sweep (the same for every model)."""

    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    input_size: int | None = None  # H = W; None: each model's default
    mode: str = "infer"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str = "cpu"
    threads: int | None = None
    min_time: float = 1.0
    warmup: int = 3
    imports: list[str] = field(default_factory=list)  # modules that register extra models


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_device(device: str) -> str:
    """``device`` if this machine has it, else a ValueError saying why not."""
    import torch

    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
                   else "no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty)")
            raise ValueError(f"--device {device}: CUDA is not available: {why}")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
        return device
    raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N")


def check_config(models: Sequence[str], cfg: BenchConfig) -> list[tuple[str, list[int]]]:
    """Validate everything; returns (model, input_size CxHxW) per model."""
    import importlib

    from cnnlab.bench.measure import MODES, PRECISIONS
    from cnnlab.registry import model_info

    for module in cfg.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"--import {module}: cannot import it ({exc}); give a module importable from "
                             "here that registers models") from None
    if not models:
        raise ValueError("no models given")
    if not cfg.batch_sizes:
        raise ValueError("no batch sizes given")
    for bs in cfg.batch_sizes:
        _positive_int(bs, "every batch size")
    if len(set(cfg.batch_sizes)) != len(cfg.batch_sizes):
        raise ValueError(f"batch sizes repeat: {list(cfg.batch_sizes)}")
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.threads is not None:
        _positive_int(cfg.threads, "threads")
    if not cfg.min_time >= 0:
        raise ValueError(f"min_time must be >= 0 seconds, got {cfg.min_time!r}")
    if isinstance(cfg.warmup, bool) or not isinstance(cfg.warmup, int) or cfg.warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {cfg.warmup!r}")
    check_device(cfg.device)
    if cfg.input_size is not None:
        _positive_int(cfg.input_size, "input size")
    if len(set(models)) != len(models):
        raise ValueError(f"models repeat: {list(models)}")
    jobs = []
    for name in models:
        info = model_info(name)  # UnknownModelError (a ValueError) with suggestions
        c, h, w = info.input_size
        if cfg.input_size is not None:
            if cfg.input_size < info.min_input_size:
                raise ValueError(f"input size {cfg.input_size} is below {name}'s minimum of {info.min_input_size}")
            h = w = cfg.input_size
        jobs.append((name, [c, h, w]))
    return jobs


def result_key(record: dict) -> tuple:
    """What identifies a measurement: model, batch size and the settings."""
    return (record["model"], record["batch_size"]) + tuple(
        tuple(v) if isinstance(v := record.get(k), list) else v for k in _SETTINGS)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(cfg: BenchConfig) -> dict:
    """The machine, versions and settings a sweep ran with."""
    import numpy
    import torch

    import cnnlab

    env = {
        "type": "env",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cnnlab": cnnlab.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": cfg.threads or torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "worker_allocator_env": {k: os.environ.get(k, v) for k, v in ALLOCATOR_ENV.items()},
        "settings": {k: v for k, v in asdict(cfg).items() if k != "imports"},
        "conventions": {"macs": "1 multiply-add = 1 MAC = 2 FLOPs; conv + linear; per image",
                        "latency": "seconds per batch; images_per_s = batch / median latency",
                        "memory": "peak above the baseline before the runs (CPU: RSS; CUDA: allocator)"},
        "git": _git_commit(),
    }
    if cfg.device.startswith("cuda"):
        index = int(cfg.device[5:]) if ":" in cfg.device else 0
        env["gpu"] = torch.cuda.get_device_name(index)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        try:
            import pynvml

            pynvml.nvmlInit()
            env["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception as exc:
            env["driver"] = f"unavailable: {exc}"
    return env


def _git_commit() -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_results(path: str, *, repair: bool = False) -> list[dict]:
    """Every record of a bench JSONL file.

    A last line cut short (the process killed while writing it) is dropped, and with
    ``repair=True`` cut from the file so that appending continues on a clean line; a
    bad line anywhere else means the file is not a bench file and raises ValueError.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a bench results file") from None
    lines = data.split(b"\n")
    records = []
    good_end = 0
    pos = 0
    for i, raw in enumerate(lines):
        end = pos + len(raw) + 1
        if raw.strip():
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict) or "type" not in rec:
                    raise ValueError("not a record")
            except (ValueError, UnicodeDecodeError):
                last = i == len(lines) - 1 or (i == len(lines) - 2 and not lines[-1].strip())
                if last and raw.lstrip().startswith(b"{"):
                    break  # the cut-short last line (a record is a JSON object: anything else is not one)
                raise ValueError(f"{path} line {i + 1} is not a cnnlab bench record; is it a bench JSONL file?") from None
            records.append(rec)
            good_end = min(end, len(data))
        pos = end
    if repair and good_end < len(data) and data[good_end:].strip():
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


class _Sink:
    """Appends records to the JSONL file (if any), one fsync'd line each."""

    def __init__(self, path: str | None):
        self.path = path
        self.f = None
        if path:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            self.f = open(path, "a")
            if self.f.tell() > 0:
                with open(path, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        self.f.write("\n")

    def write(self, record: dict) -> None:
        if self.f is None:
            return
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def _describe_exit(rc: int, stderr_tail: str) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        why = f"worker killed by {name}"
        if -rc == signal.SIGKILL:
            why += " (the kernel's out-of-memory killer does this)"
    else:
        why = f"worker exited with status {rc}"
    return why + (f": {stderr_tail}" if stderr_tail else "")


def _die_with_parent() -> None:
    """In the worker, before exec: Linux kills it if the parent dies (no orphaned measurement)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_worker(job: dict, on_record: Callable[[dict], None]) -> tuple[int, str]:
    """Run one worker to the end; returns its exit status and the last line of its stderr."""
    import cnnlab

    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(cnnlab.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update({k: v for k, v in ALLOCATOR_ENV.items() if k not in os.environ})
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab.bench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                start_new_session=True,  # Ctrl-C reaches the parent only; it stops the worker
                                preexec_fn=_die_with_parent)
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            for line in proc.stdout:
                if line.startswith(MARK):
                    on_record(json.loads(line[len(MARK):]))
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        tail = [ln.strip() for ln in err.read().splitlines() if ln.strip()]
    return rc, (tail[-1] if tail else "")


def bench(
    models: Sequence[str],
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    *,
    out: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    config: BenchConfig | None = None,
    **settings,
) -> list[dict]:
    """Measure ``models`` at ``batch_sizes``; returns the result records (resumed ones too).

    ``settings`` are :class:`BenchConfig` fields (``input_size``, ``mode``, ``precision``,
    ``channels_last``, ``compile``, ``device``, ``threads``, ``min_time``, ``warmup``).
    With ``out``, records are appended to that JSONL file as they are measured; an
    existing file needs ``resume=True`` (skip what it holds) or ``overwrite=True``.
    """
    if isinstance(models, str):
        raise TypeError(f"models must be a list of model names, e.g. [{models!r}], got the string {models!r}")
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume keeps what --out holds, "
                         "--overwrite deletes it; give one")
    if resume and not out:
        raise ValueError("--resume continues an --out file: give --out FILE too")
    cfg = config or BenchConfig(batch_sizes=tuple(batch_sizes), **settings)
    if config is not None and settings:
        raise TypeError("give either config or settings, not both")
    jobs = check_config(list(models), cfg)
    done: dict[tuple, dict] = {}
    if out:
        if os.path.isdir(out):
            raise ValueError(f"--out {out} is a directory; give a file name such as bench.jsonl")
        if os.path.exists(out) and not (resume or overwrite):
            raise ValueError(f"{out} exists: pass --resume to continue it or --overwrite to replace it")
        if os.path.exists(out) and resume:
            for rec in read_results(out, repair=True):
                if rec.get("type") == "result" and rec.get("status") in ("ok", "oom"):
                    done[result_key(rec)] = rec
        elif os.path.exists(out):
            os.remove(out)
    import torch

    threads = cfg.threads or torch.get_num_threads()
    results: list[dict] = []
    todo: list[tuple[str, list[int], list[int]]] = []
    for name, size in jobs:
        left = []
        for bs in cfg.batch_sizes:
            key = result_key({"model": name, "batch_size": bs, "mode": cfg.mode, "precision": cfg.precision,
                              "device": cfg.device, "input_size": size, "channels_last": cfg.channels_last,
                              "compile": cfg.compile, "threads": threads})
            if key in done:
                results.append(done[key])
            else:
                left.append(bs)
        if left:
            todo.append((name, size, left))
    total = sum(len(left) for _, _, left in todo)
    if total == 0:
        return results

    sink = _Sink(out)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="point", file=sys.stderr, dynamic_ncols=True)
    try:
        sink.write(environment(cfg))
        for name, size, left in todo:
            while left:
                current: list[int] = []

                def on_record(rec: dict) -> None:
                    if rec["type"] == "start":
                        current[:] = [rec["batch_size"]]
                        if bar is not None:
                            bar.set_description(f"{name} @ {rec['batch_size']}")
                        return
                    sink.write(rec)
                    results.append(rec)
                    if rec["batch_size"] in left:
                        left.remove(rec["batch_size"])
                    current.clear()
                    if bar is not None:
                        bar.update(1)

                job = {"model": name, "batch_sizes": list(left), "input_size": size, "mode": cfg.mode,
                       "precision": cfg.precision, "channels_last": cfg.channels_last, "compile": cfg.compile,
                       "device": cfg.device, "threads": threads, "min_time": cfg.min_time, "warmup": cfg.warmup,
                       "imports": list(cfg.imports), "sys_path": [p for p in sys.path if p]}
                rc, tail = _run_worker(job, on_record)
                if left and (rc != 0 or current):
                    # the worker died: the batch size it was on (or the first left) is lost, the rest go on
                    bs = current[0] if current else left[0]
                    rec = {"type": "result", "model": name, "batch_size": bs, "mode": cfg.mode,
                           "precision": cfg.precision, "device": cfg.device, "input_size": size,
                           "channels_last": cfg.channels_last, "compile": cfg.compile, "threads": threads,
                           "status": "crashed", "error": _describe_exit(rc, tail),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                    on_record(rec)
                elif left:  # the worker ended cleanly without measuring them: should not happen
                    raise RuntimeError(f"the worker for {name} ended without measuring batch sizes {left}")
    finally:
        if bar is not None:
            bar.close()
        sink.close()
    return results


def ok_results(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("type") == "result" and r.get("status") == "ok"]
