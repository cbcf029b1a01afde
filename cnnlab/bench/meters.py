"""Energy meters: NVIDIA's NVML on GPUs, Linux RAPL on CPUs.

A meter is started before the timed runs, sampled after each run and stopped after
the last; it returns the energy in joules used in between. Where no meter exists
(no RAPL files, counters readable only by root, no NVML library, a GPU without an
energy counter) :func:`open_meter` returns an :class:`Unavailable` with the reason,
and the results record that reason: never 0, never an estimate.

RAPL (Intel's Running Average Power Limit, also used for AMD's counters) exposes one
cumulative counter per package in ``/sys/class/powercap/intel-rapl:N/energy_uj``
(micro-joules) that wraps to 0 at ``max_energy_range_uj``. Sampling after every run
keeps each interval far shorter than a wrap (about a minute at full power), so
every wrap is seen and added back. The counter covers the whole package: every
process on it, not only the measured one.

NVML's ``nvmlDeviceGetTotalEnergyConsumption`` (milli-joules since the driver loaded,
Volta and newer) is used where the GPU has it; older GPUs give only the power draw
(``nvmlDeviceGetPowerUsage``, milli-watts, itself averaged by the board over about a
second), which is then sampled after every run and integrated over time, and the
record says so.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Unavailable", "RaplMeter", "NvmlMeter", "open_meter", "RAPL_ROOT"]

RAPL_ROOT = "/sys/class/powercap"


@dataclass(frozen=True)
class Unavailable:
    """No meter: ``reason`` says why."""

    reason: str


class _Counter:
    """A cumulative counter that wraps at ``max_range``: accumulates increments."""

    def __init__(self, read: Callable[[], int], max_range: int):
        self.read = read
        self.max_range = max_range
        self.last = read()
        self.total = 0
        self.wraps = 0

    def sample(self) -> None:
        now = self.read()
        delta = now - self.last
        if delta < 0:  # wrapped past max_range back to 0
            delta += self.max_range
            self.wraps += 1
        self.total += delta
        self.last = now


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


class RaplMeter:
    """Sum of the package-level RAPL energy counters under ``root``."""

    def __init__(self, root: str = RAPL_ROOT, clock: Callable[[], float] = time.perf_counter):
        self.root = root
        self.clock = clock
        self.domains = self.find_domains(root)
        self.counters: list[_Counter] = []

    @staticmethod
    def find_domains(root: str) -> list[tuple[str, str]]:
        """(name, directory) of every top-level (package) RAPL domain under ``root``."""
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root} does not exist (no powercap driver)")
        found = []
        for entry in sorted(os.listdir(root)):
            # intel-rapl:0 is a package; intel-rapl:0:1 a sub-domain inside it (core, uncore, dram)
            if not entry.startswith("intel-rapl:") or entry.count(":") != 1:
                continue
            d = os.path.join(root, entry)
            if not os.path.exists(os.path.join(d, "energy_uj")):
                continue
            try:
                with open(os.path.join(d, "name")) as f:
                    name = f.read().strip()
            except OSError:
                name = entry
            found.append((name, d))
        if not found:
            raise FileNotFoundError(f"no RAPL package domain (intel-rapl:N/energy_uj) under {root}")
        return found

    @property
    def source(self) -> str:
        return "RAPL " + "+".join(name for name, _ in self.domains) + " (whole package, all processes)"

    def start(self) -> None:
        self.counters = [
            _Counter(lambda d=d: _read_int(os.path.join(d, "energy_uj")),
                     _read_int(os.path.join(d, "max_energy_range_uj")))
            for _, d in self.domains
        ]
        self.t0 = self.clock()

    def sample(self) -> None:
        for c in self.counters:
            c.sample()

    def stop(self) -> dict:
        self.sample()
        seconds = self.clock() - self.t0
        joules = sum(c.total for c in self.counters) / 1e6
        return {"energy_j": joules, "seconds": seconds, "wraps": sum(c.wraps for c in self.counters),
                "source": self.source}


class NvmlMeter:
    """Energy of one NVIDIA GPU through NVML (the ``pynvml`` module of nvidia-ml-py)."""

    def __init__(self, nvml: Any, index: int = 0, clock: Callable[[], float] = time.perf_counter):
        self.nvml = nvml
        self.clock = clock
        nvml.nvmlInit()
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.counter = True
        except Exception:  # NVMLError_NotSupported on GPUs older than Volta
            self.counter = False
            nvml.nvmlDeviceGetPowerUsage(self.handle)  # raises if not even power is readable

    @property
    def source(self) -> str:
        return ("NVML total energy counter" if self.counter
                else "NVML power draw sampled after each run, integrated over time")

    def start(self) -> None:
        self.t0 = self.last_t = self.clock()
        self.joules = 0.0
        if self.counter:
            self.e0 = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)

    def sample(self) -> None:
        if self.counter:
            return
        now = self.clock()
        watts = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000
        self.joules += watts * (now - self.last_t)
        self.last_t = now

    def stop(self) -> dict:
        self.sample()
        seconds = self.clock() - self.t0
        if self.counter:
            self.joules = (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self.e0) / 1000
        return {"energy_j": self.joules, "seconds": seconds, "wraps": 0, "source": self.source}


def open_meter(device: str, *, rapl_root: str = RAPL_ROOT, nvml: Any = None):
    """The energy meter for ``device`` ("cpu" or "cuda[:N]"), or :class:`Unavailable`."""
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if nvml is None:
            try:
                import pynvml as nvml  # nvidia-ml-py
            except ImportError:
                return Unavailable("NVML not installed (pip install nvidia-ml-py)")
        try:
            return NvmlMeter(nvml, index)
        except Exception as exc:
            return Unavailable(f"NVML cannot read GPU {index}: {exc}")
    try:
        meter = RaplMeter(rapl_root)
        meter.start()  # reads every counter once: fails here if only root may read them
        return meter
    except PermissionError as exc:
        return Unavailable(f"RAPL counters not readable by this user ({exc.filename}); "
                           "they are root-only on most systems since 2020")
    except (FileNotFoundError, OSError, ValueError) as exc:
        return Unavailable(f"no RAPL energy counter: {exc}")
