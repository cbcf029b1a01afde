"""Bad input and faults: each fails with a clear message and never loses a good checkpoint."""
import errno
import json

import pytest
import torch

import cnnlab.train.checkpoint as ckpt_mod
from cnnlab.cli import main
from cnnlab.train import CheckpointError, TrainingDiverged, fit, load_checkpoint, save_checkpoint
from cnnlab.train.recipes import UnknownRecipeError
from train_testkit import DATASET, SMALL, FlatNet, NaNAfter, TinyNet


def _fit(model, tmp_path, **kw):
    kw = {"recipe": "fast", "epochs": 2, "batch_size": 32, "progress": "none", **SMALL, **kw}
    return fit(model, kw.pop("dataset", DATASET), out=str(tmp_path / "run"), **kw)


def test_unknown_dataset_and_recipe(tmp_path, capsys):
    with pytest.raises(ValueError, match="no_such_data"):
        _fit(TinyNet(), tmp_path, dataset="no_such_data")
    with pytest.raises(UnknownRecipeError, match="unknown recipe 'resnet_cifr'.*resnet_cifar"):
        _fit(TinyNet(), tmp_path, recipe="resnet_cifr")
    assert main(["train", "no_such_model"]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert main(["train", "resnet50", "--out", str(tmp_path / "r50")]) == 2  # ImageNet model, no folder given
    assert "give --data-root PATH" in capsys.readouterr().err


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    assert main(["eval", str(tmp_path / "nothing.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err

    good = save_checkpoint({"model": {"w": torch.ones(1000)}, "meta": {"model": "x"}}, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all" * 10)
    for name in ("truncated.pt", "garbage.pt"):
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(tmp_path / name)
    broken = bytearray(data)
    at = data.find(b"data.pkl") + 40  # damage the pickled dict inside an intact archive
    broken[at:at + 20] = b"\xff" * 20
    (tmp_path / "damaged.pt").write_bytes(bytes(broken))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "damaged.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a cnnlab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    assert main(["eval", str(tmp_path / "garbage.pt")]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and len(err.strip().splitlines()) == 1


class Payload:
    """A pickled object: weights_only loading must refuse to run it."""

    def __reduce__(self):
        return (print, ("code from a checkpoint ran",))


def test_checkpoints_are_loaded_weights_only(tmp_path, capsys):
    torch.save({"format": 1, "model": {}, "meta": {}, "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="will not run code from a file"):
        load_checkpoint(tmp_path / "evil.pt")
    assert "code from a checkpoint ran" not in capsys.readouterr().out


def test_resume_without_a_checkpoint_and_overwriting_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _fit(TinyNet(), tmp_path, resume=True)
    _fit(TinyNet(), tmp_path, epochs=1)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        _fit(TinyNet(), tmp_path, epochs=1)


def test_a_model_that_cannot_take_the_images(tmp_path):
    with pytest.raises(ValueError, match=r"model flatnet cannot take digits's images as 1x8x8 inputs"):
        _fit(FlatNet(), tmp_path)
    small = TinyNet()
    small.min_input_size = 32
    with pytest.raises(ValueError, match="needs inputs of at least 32x32 pixels; 8x8 is too small"):
        _fit(small, tmp_path)
    with pytest.raises(ValueError, match=r"returns \(2, 4\).*\(N, 10\)"):
        _fit(TinyNet(num_classes=4), tmp_path)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    steps_per_epoch = 256 // 32
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*last good checkpoint is .*last.pt \(epoch 1\)"):
        _fit(NaNAfter(after=steps_per_epoch + 1), tmp_path, epochs=3)
    run = tmp_path / "run"
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "diverged" and records[-1]["epoch"] == 2
    assert not (run / "results.json").exists()


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:  # epoch 1: last.pt and best.pt
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", save_until_the_disk_fills)
    with pytest.raises(OSError, match="could not write checkpoint .*last.pt: the disk is full; the previous last.pt is intact"):
        _fit(TinyNet(), tmp_path, epochs=3)
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    run = tmp_path / "run"
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in run.iterdir() if p.suffix == ".pt" or ".tmp" in p.name) == ["best.pt", "last.pt"]
