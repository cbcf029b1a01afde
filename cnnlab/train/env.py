"""What a result was produced with: versions, git commit, machine."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["versions", "git_commit", "cpu_model", "machine"]


def versions() -> dict[str, Any]:
    import numpy
    import torch

    import cnnlab

    return {"cnnlab": cnnlab.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "platform": platform.platform(), "cuda": torch.version.cuda}


def git_commit() -> str | None:
    """The commit of the cnnlab checkout this code runs from (None outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cpus": os.cpu_count()}
    try:
        info["load_average"] = os.getloadavg()[0]
    except OSError:
        pass
    import torch

    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
