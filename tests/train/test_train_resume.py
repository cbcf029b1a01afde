"""--resume continues exactly: a run killed with SIGKILL and resumed ends where an
uninterrupted run ends, bit for bit."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnlab.train import fit, load_checkpoint
from train_testkit import DATASET, SMALL, TinyNet

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# One training run in a fresh process: TinyNet (with dropout and BatchNorm) on 8x8 digits.
CHILD = f"""
import sys, torch
sys.path[:0] = [{str(ROOT)!r}, {str(HERE)!r}]
torch.set_num_threads(1)
torch.manual_seed(0)
from cnnlab.train import fit
from train_testkit import DATASET, SMALL, TinyNet
fit(TinyNet(), DATASET, recipe="fast", epochs=4, batch_size=16, out=sys.argv[1], resume=sys.argv[2] == "1",
    progress="none", **SMALL)
"""


def _child(out, resume=False):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(out), "1" if resume else "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    first = _child(whole)
    victim = _child(killed)
    deadline = time.monotonic() + 120
    while not (killed / "last.pt").exists():
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed / "results.json").exists(), "the run ended before it could be killed"
    epoch_killed = load_checkpoint(killed / "last.pt")["epoch"]
    assert 1 <= epoch_killed < 4

    resumed = _child(killed, resume=True)
    for proc in (first, resumed):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (whole, killed))
    assert ra["test"] == rb["test"] and rb["resumed_from_epoch"] == epoch_killed

    def epochs(d):
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        return {r["epoch"]: r["val_loss"] for r in rows if r.get("kind") == "epoch"}

    assert epochs(whole) == epochs(killed)


def _fit(tmp_path, **kw):
    kw = {"recipe": "fast", "epochs": 2, "batch_size": 32, "progress": "none", **SMALL, **kw}
    return fit(TinyNet(), DATASET, out=str(tmp_path / "run"), **kw)


def test_resume_keeps_the_runs_settings_and_may_extend_it(tmp_path):
    _fit(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="lr differs from the run being resumed"):
        _fit(tmp_path, resume=True, lr=0.5)
    with pytest.raises(ValueError, match="uses recipe 'fast', not 'resnet_cifar'"):
        _fit(tmp_path, resume=True, recipe="resnet_cifar")
    results = _fit(tmp_path, resume=True, epochs=2)
    assert results["resumed_from_epoch"] == 1 and results["epochs"] == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2


def test_in_process_resume_is_bit_equal(tmp_path):
    """2 epochs straight == 1 epoch, then --resume with epochs=2 (weights, optimizer, EMA).
    A constant learning rate, so that the first part's schedule does not depend on its length."""
    common = dict(recipe="fast", batch_size=16, progress="none", ema_decay=0.9, schedule="constant",
                  warmup_epochs=0, **SMALL)
    torch.manual_seed(0)
    fit(TinyNet(), DATASET, epochs=2, out=str(tmp_path / "straight"), **common)
    torch.manual_seed(0)
    fit(TinyNet(), DATASET, epochs=1, out=str(tmp_path / "split"), **common)
    fit(TinyNet(), DATASET, epochs=2, out=str(tmp_path / "split"), resume=True, **common)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 2
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    ra = json.loads((tmp_path / "straight" / "results.json").read_text())
    rb = json.loads((tmp_path / "split" / "results.json").read_text())
    assert ra["test"] == rb["test"] and ra["val"] == rb["val"] and ra["threads"] == rb["threads"]
