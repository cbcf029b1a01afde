"""`torchrun --nproc-per-node 2 -m cnnlab train ...` trains with DDP on two CPU processes (gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "cnnlab", "train", "resnet20", "--dataset", "digits", "--image-size", "8", "--epochs", "1",
           "--train-samples", "256", "--test-samples", "128", "--batch-size", "32", "--device", "cpu",
           "--out", str(out), "--progress", "lines"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2
    # Each rank trained on its half: 128 images = 4 steps of 32 per rank, 256 images in all.
    assert results["steps"] == 4 and results["train_images"] == 256
    assert 0 <= results["test"]["top1"] <= 1
    # Rank 0 alone logs and checkpoints: one epoch record, one summary line on stdout.
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r.get("kind") == "epoch"] == [1]
    assert proc.stdout.count("resnet20 on digits: test accuracy") == 1
    assert proc.stdout.count("epoch 1/1") == 1
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
