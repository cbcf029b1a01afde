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


def test_a_flipped_byte_in_the_weights_is_refused(tmp_path):
    results = _fit(TinyNet(), tmp_path, epochs=1)
    path = tmp_path / "run" / "last.pt"
    data = bytearray(path.read_bytes())
    with __import__("zipfile").ZipFile(path) as z:  # a byte in the middle of a tensor's storage
        info = max(z.infolist(), key=lambda i: i.file_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size // 2] ^= 0x40
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its CRC-32 check"):
        load_checkpoint(tmp_path / "flipped.pt")
    assert results["steps"] > 0
    state = load_checkpoint(path)
    del state["meta"]["num_classes"]
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, tmp_path / "no_classes.pt")
    with pytest.raises(CheckpointError, match="lacks num_classes"):
        load_checkpoint(tmp_path / "no_classes.pt")


def test_two_runs_cannot_share_a_folder(tmp_path):
    from cnnlab.train.loop import RunLock

    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(ValueError, match=r"another cnnlab run \(pid \d+\) is using"):
            _fit(TinyNet(), tmp_path)
    assert not (out / "last.pt").exists()  # the refused run wrote nothing
    (out / ".last.pt.tmp-999999").write_bytes(b"half a checkpoint")  # left by a kill mid-write
    _fit(TinyNet(), tmp_path)
    assert not list(out.glob(".*.tmp-*"))


def test_resuming_a_finished_run_keeps_its_results(tmp_path, capsys):
    first = _fit(TinyNet(), tmp_path, epochs=2)
    again = _fit(TinyNet(), tmp_path, epochs=2, resume=True)
    assert again == json.loads(json.dumps(first))  # timings and all: nothing rewritten
    with pytest.raises(ValueError, match="already trained 2 epochs"):
        _fit(TinyNet(), tmp_path, epochs=1, resume=True)


def test_metrics_survive_a_kill_mid_line_without_duplicates(tmp_path):
    _fit(TinyNet(), tmp_path, epochs=2)
    metrics = tmp_path / "run" / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    # a kill after epoch 2's record but before its checkpoint, while a third record was half written
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    state["epoch"] = 1  # pretend the last checkpoint is epoch 1's: epoch 2 will be trained again
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, tmp_path / "run" / "last.pt")
    metrics.write_text("".join(lines) + '{"kind": "epoch", "epo')
    _fit(TinyNet(), tmp_path, epochs=3, resume=True)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]  # every line parses
    assert [r["epoch"] for r in rows if r.get("kind") == "epoch"] == [1, 2, 3]
    assert sum(r.get("kind") == "results" for r in rows) == 1


class InterruptAt(TinyNet):
    def __init__(self, calls):
        super().__init__()
        self.calls, self.seen = calls, 0

    def forward(self, x):
        if self.training:
            self.seen += 1
            if self.seen == self.calls:
                raise KeyboardInterrupt
        return super().forward(x)


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path, capsys):
    steps = 7  # 231 training images / 32 per batch: epoch 2 starts at the 8th step
    with pytest.raises(KeyboardInterrupt):
        _fit(InterruptAt(steps + 3), tmp_path, epochs=3, progress="lines")
    err = capsys.readouterr().err
    assert "interrupted during epoch 2 of 3" in err and "last.pt holds epoch 1" in err
    assert f"--resume --out {tmp_path / 'run'}" in err


@pytest.mark.parametrize("option, message", [
    ({"batch_size": True}, "batch_size must be"),
    ({"warmup_epochs": float("inf")}, "warmup_epochs must be a finite number"),
    ({"weight_decay": float("inf")}, "weight_decay must be a finite number"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
    ({"threads": 100000}, "threads must be at most"),
    ({"threads": 0}, "threads must be a positive integer"),
    ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
    ({"optimizer_options": "[1, 2]"}, "optimizer_options must be a dict"),
])
def test_bad_numbers_are_named(tmp_path, option, message):
    with pytest.raises(ValueError, match=message):
        _fit(TinyNet(), tmp_path, **option)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_cli_bad_numbers_are_one_line(tmp_path, capsys):
    for flag in (["--warmup-epochs", "inf"], ["--weight-decay", "inf"], ["--threads", "100000"],
                 ["--val-fraction", "2"], ["--optimizer", "nosuch"]):
        assert main(["train", "lenet5", "--out", str(tmp_path / "r"), *flag]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err, (flag, err)


def test_a_single_class_cannot_be_trained(tmp_path):
    from PIL import Image
    import numpy as np

    for i in range(12):
        (tmp_path / "pics" / "cat").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i * 10, np.uint8)).save(tmp_path / "pics" / "cat" / f"{i}.png")
    with pytest.raises(ValueError, match="single class"):
        _fit(TinyNet(in_chans=3), tmp_path, dataset="imagefolder", data_root=str(tmp_path / "pics"), test_samples=None,
             train_samples=None, num_workers=0)


def test_a_full_disk_is_named_when_torch_reports_it_as_a_runtime_error(tmp_path, monkeypatch):
    def failing_save(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 456")

    monkeypatch.setattr(ckpt_mod.torch, "save", failing_save)
    monkeypatch.setattr(ckpt_mod.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(OSError, match="the disk is full"):
        save_checkpoint({"model": {}, "meta": {}}, tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())  # no temporary file left


META = {"model": "x", "num_classes": 2, "input_size": [1, 8, 8], "classes": ["a", "b"], "dataset": "digits",
        "dataset_channels": 1, "mean": [0.5], "std": [0.2]}


def test_a_run_folder_loads_its_best_checkpoint_else_its_last(tmp_path):
    save_checkpoint({"model": {}, "meta": META, "epoch": 3}, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path)["epoch"] == 3
    save_checkpoint({"model": {}, "meta": META, "epoch": 2}, tmp_path / "best.pt")
    assert load_checkpoint(tmp_path)["epoch"] == 2
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["format"] == 1 and state["meta"] == META
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at {tmp_path / 'empty' / 'last.pt'}"):
        (tmp_path / "empty").mkdir()
        load_checkpoint(tmp_path / "empty")


def test_unreadable_checkpoints_say_why_in_one_line(tmp_path, monkeypatch):
    path = save_checkpoint({"model": {}, "meta": META}, tmp_path / "c.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a readable checkpoint \(truncated or corrupt: not a "
                                              r"complete PyTorch zip archive\)$"):
        load_checkpoint(tmp_path / "cut.pt")

    def fails(message):
        def load(*args, **kwargs):
            raise RuntimeError(message)
        return load

    monkeypatch.setattr(ckpt_mod.torch, "load", fails("PytorchStreamReader failed\nsecond line\nthird"))
    with pytest.raises(CheckpointError, match=r"c.pt is not a readable checkpoint \(truncated or corrupt\?\): "
                                              r"PytorchStreamReader failed$"):
        load_checkpoint(path)
    monkeypatch.setattr(ckpt_mod.torch, "load", fails("  "))
    with pytest.raises(CheckpointError, match=r"\(truncated or corrupt\?\): RuntimeError$"):
        load_checkpoint(path)
    monkeypatch.undo()
    save_checkpoint({"model": {}, "meta": META, "format": 2}, tmp_path / "future.pt")  # a later format
    with pytest.raises(CheckpointError, match="has checkpoint format 2; this cnnlab reads 1"):
        load_checkpoint(tmp_path / "future.pt")


def test_the_disk_is_called_full_below_one_mebibyte_free(tmp_path, monkeypatch):
    from cnnlab.train.checkpoint import _disk_full

    _disk_full(tmp_path / "x.pt")  # asks the real disk of the folder without an error
    seen = []

    def usage(free):
        def disk_usage(p):
            seen.append(p)
            return type("Usage", (), {"free": free})()
        return disk_usage

    monkeypatch.setattr(ckpt_mod.shutil, "disk_usage", usage((1 << 20) - 1))
    assert _disk_full(tmp_path / "x.pt") and seen == [tmp_path]
    monkeypatch.setattr(ckpt_mod.shutil, "disk_usage", usage(10 << 20))
    assert not _disk_full(tmp_path / "x.pt")

    def no_disk(p):
        raise OSError(errno.ENOENT, "gone")

    monkeypatch.setattr(ckpt_mod.shutil, "disk_usage", no_disk)
    assert not _disk_full(tmp_path / "x.pt")  # unknown: not called full


def test_cuda_generator_states_are_restored_only_where_there_is_cuda(monkeypatch):
    from cnnlab.train.checkpoint import rng_state, set_rng_state

    state = rng_state()
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    set_rng_state({**state, "cuda": ["gpu state"]})  # a GPU run resumed on a CPU machine
    set_rng_state(state)
    assert restored == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    set_rng_state(state)  # a CPU run resumed on a GPU machine
    assert restored == []
    set_rng_state({**state, "cuda": ["gpu state"]})
    assert restored == [["gpu state"]]
