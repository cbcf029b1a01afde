"""Peak memory of the measuring process.

CPU: Linux keeps the peak resident set size of a process (``VmHWM`` in
``/proc/self/status``) and lets the process reset it to the current size by writing
``5`` to ``/proc/self/clear_refs``. Before a batch size is measured, freed heap memory
is handed back to the system (``malloc_trim``), the peak is reset and the resident
size read as the baseline; afterwards the peak minus that baseline is what the passes
needed beyond the model's weights and the Python process: activations, workspace
buffers, gradients and optimizer state.

CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``) above what was
allocated before the passes, and the reserved peak beside it.
"""
from __future__ import annotations

import ctypes
import gc
import os

__all__ = ["CpuPeak", "status_kib"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def status_kib(field: str, path: str = _STATUS) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in KiB, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class CpuPeak:
    """Peak resident memory above a baseline, for one measurement."""

    def __init__(self):
        self.available = os.path.exists(_CLEAR_REFS) and status_kib("VmHWM") is not None
        self.reason = None if self.available else "no /proc/self/clear_refs and VmHWM (not Linux)"

    def start(self) -> None:
        if not self.available:
            return
        gc.collect()
        _malloc_trim()
        try:
            with open(_CLEAR_REFS, "w") as f:
                f.write("5")  # reset VmHWM to the current VmRSS
        except OSError as exc:
            self.available = False
            self.reason = f"cannot reset the peak resident size: {exc}"
            return
        self.baseline = status_kib("VmRSS") * 1024

    def stop(self) -> dict:
        if not self.available:
            return {"peak_bytes": None, "unavailable": self.reason}
        peak = status_kib("VmHWM") * 1024
        return {"peak_bytes": max(0, peak - self.baseline), "baseline_rss_bytes": self.baseline,
                "method": "peak RSS (VmHWM, reset via /proc/self/clear_refs) above the RSS before the runs"}
