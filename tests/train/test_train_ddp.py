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
    # 10% of the 256 images are held out for validation (evaluated over both ranks, each image
    # once); each rank trains on its half of the rest in whole batches of 32.
    val = results["val"]["samples"]
    assert 20 <= val <= 30
    per_rank = (256 - val) // 2
    assert results["steps"] == per_rank // 32 and results["train_images"] == 2 * 32 * (per_rank // 32)
    assert results["test"]["samples"] == 128
    assert 0 <= results["test"]["top1"] <= 1
    # Rank 0 alone logs and checkpoints: one epoch record, one summary line on stdout.
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r.get("kind") == "epoch"] == [1]
    assert proc.stdout.count("resnet20 on digits: test accuracy") == 1
    assert proc.stdout.count("epoch 1/1") == 1
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
