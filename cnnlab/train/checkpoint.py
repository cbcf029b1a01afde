"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so
loading it never runs code from the file:

    model          the model's state_dict
    optimizer      the optimizer's state_dict
    schedule       the learning-rate schedule's state (plateau drops)
    scaler         the fp16 GradScaler's state (empty otherwise)
    rng            torch CPU (and CUDA) generator states, Python's random state
    epoch          epochs completed
    step           optimizer steps taken
    best_top1      the best test top-1 so far
    config         the resolved run configuration (JSON-able)
    meta           model name, classes, input size, normalization, cnnlab version

A write goes to a temporary file in the same folder, is flushed to disk, then
renamed over the old file with ``os.replace``: a crash or a full disk mid-write
leaves the previous checkpoint as it was.
"""
from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a cnnlab checkpoint."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # torch.save reports a failed write as a RuntimeError ("[enforce fail at inline_container.cc...]")
        tmp.unlink(missing_ok=True)
        code = getattr(exc, "errno", None)
        if isinstance(exc, RuntimeError) and not _disk_full(path):
            raise
        why = "the disk is full" if code == errno.ENOSPC or _disk_full(path) else (
            getattr(exc, "strerror", None) or str(exc))
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        raise OSError(code or errno.EIO, f"could not write checkpoint {path}: {why}{kept}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _disk_full(path: Path, margin: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < margin
    except OSError:
        return False


REQUIRED_META = ("model", "num_classes", "input_size", "classes", "dataset", "dataset_channels", "mean", "std")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "best.pt"
        if not candidate.exists():
            candidate = path / "last.pt"
        path = candidate
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: not a complete "
                              "PyTorch zip archive)")
    try:  # every member's CRC-32, as written by torch.save: a flipped byte anywhere fails here
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt: {bad} inside it fails its CRC-32 check (the file was damaged "
                              "after it was written); use another checkpoint (last.pt / best.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} holds pickled objects other than tensors and plain values; cnnlab loads "
                              "checkpoints with weights_only=True and will not run code from a file") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(state, dict) or "model" not in state or "meta" not in state:
        raise CheckpointError(f"{path} is not a cnnlab checkpoint (no model weights and metadata in it)")
    missing = [k for k in REQUIRED_META if not isinstance(state.get("meta"), dict) or k not in state["meta"]]
    if missing:
        raise CheckpointError(f"{path} is not a complete cnnlab checkpoint: its metadata lacks {', '.join(missing)}")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {state.get('format')!r}; this cnnlab reads {CHECKPOINT_FORMAT}")
    return state


def rng_state() -> dict[str, Any]:
    """Every generator the training loop draws from, as weights-only-loadable values."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
