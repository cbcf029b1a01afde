"""Models with a known cost or a known failure, registered for the bench tests.

Imported by the test process and, through ``BenchConfig.imports``, by the worker
subprocesses."""
import os
import signal
import time

import torch
from torch import nn

from cnnlab.registry import Paper, register_model

_PAPER = Paper(title="bench test model", authors="cnnlab tests", year=2026)


class _Tiny(nn.Module):
    def __init__(self, num_classes=10, in_chans=3):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(in_chans, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class Troubled(_Tiny):
    """Batch size 3: out of memory; 4: a plain bug; 5: the process is killed."""

    def forward(self, x):
        n = x.shape[0]
        if n == 3:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes")
        if n == 4:
            raise ValueError("a bug at batch size 4")
        if n == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


class Sleeper(_Tiny):
    """Each forward sleeps 20 ms: a known latency."""

    def forward(self, x):
        time.sleep(0.020)
        return super().forward(x)


class Hog(_Tiny):
    """Each forward writes a 64 MiB tensor: a known peak memory."""

    def forward(self, x):
        buf = torch.ones(16 * 2**20)  # 16 Mi float32 values = 64 MiB, every page touched
        return super().forward(x) + buf[:1]


def _register(cls, name):
    @register_model(family="benchtest", paper=_PAPER, input_size=(3, 8, 8), min_input_size=4, dataset="cifar",
                    name=name)
    def build(*, num_classes=10, in_chans=3):
        return cls(num_classes=num_classes, in_chans=in_chans)
    return build


bench_troubled = _register(Troubled, "bench_troubled")
bench_sleeper = _register(Sleeper, "bench_sleeper")
bench_hog = _register(Hog, "bench_hog")
