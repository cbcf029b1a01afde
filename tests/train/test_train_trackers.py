"""Metrics reach every tracker: metrics.jsonl always, TensorBoard and W&B (offline) on request."""
import json

import pytest

from cnnlab.train import fit
from train_testkit import DATASET, SMALL, TinyNet


def _fit(tmp_path, trackers):
    return fit(TinyNet(), DATASET, recipe="fast", epochs=2, batch_size=32, progress="none",
               out=str(tmp_path / "run"), trackers=trackers, **SMALL)


def _epochs(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") == "epoch"]


def test_tensorboard_gets_the_same_scalars_as_jsonl(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _fit(tmp_path, ("tensorboard",))
    run = tmp_path / "run"
    acc = event_accumulator.EventAccumulator(str(run / "tb"))
    acc.Reload()
    events = acc.Scalars("epoch/val_top1")
    assert [e.step for e in events] == [1, 2]
    assert [e.value for e in events] == pytest.approx([r["val_top1"] for r in _epochs(run)])


def test_wandb_runs_offline_without_credentials(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a W&B key
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    _fit(tmp_path, ("wandb",))
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    data = list(runs[0].glob("run-*.wandb"))
    assert data and data[0].stat().st_size > 0
    assert len(_epochs(tmp_path / "run")) == 2  # jsonl is written alongside
