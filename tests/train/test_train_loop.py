"""The training loop on tiny models: run directory, losses, optimizers, precisions, progress."""
import json

import pytest
import torch

from cnnlab.models.base import AuxOutput
from cnnlab.train import fit, load_checkpoint
from cnnlab.train.loop import loss_fn
from cnnlab.train.recipes import get_recipe
from train_testkit import DATASET, SMALL, AuxNet, TinyNet


def _fit(model, tmp_path, name="run", **kw):
    kw = {"recipe": "fast", "epochs": 2, "batch_size": 32, "progress": "none", **SMALL, **kw}
    return fit(model, DATASET, out=str(tmp_path / name), **kw)


def test_run_directory_records_everything(tmp_path):
    torch.manual_seed(0)
    results = _fit(TinyNet(), tmp_path, epochs=3, test_samples=None)  # the whole test set
    run = tmp_path / "run"
    assert {"config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json"} <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if ".tmp" in p.name]

    config = json.loads((run / "config.json").read_text())
    assert config["config"]["dataset"] == DATASET and config["config"]["overrides"]["epochs"] == 3
    assert config["recipe"]["name"] == "fast" and config["recipe"]["citation"]
    assert config["versions"]["torch"] == torch.__version__ and "git_commit" in config

    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if "epoch" in r and r.get("kind") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]

    saved = json.loads((run / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for key in ("model", "dataset", "epochs", "world_size", "wall_seconds", "images_per_second"):
        assert key in saved
    assert saved["epochs"] == 3 and saved["world_size"] == 1 and saved["images_per_second"] > 0
    assert 0.0 <= saved["test"]["top1"] <= saved["test"]["top5"] <= 1.0
    assert "test_top1" not in epochs[-1]  # the test set is evaluated once, at the end
    assert saved["val"]["top1"] == epochs[-1]["val_top1"] and saved["best_val_top1"] == max(r["val_top1"] for r in epochs)

    # The reported accuracy is the accuracy of the saved weights, recomputed here by hand.
    from cnnlab import data as cdata

    state = load_checkpoint(run / "last.pt")  # weights_only=True inside
    assert state["epoch"] == 3 and state["meta"]["classes"]
    model = TinyNet()
    model.load_state_dict(state["model"])
    model.eval()
    test_set = cdata.load_dataset(DATASET, "test")
    loader = cdata.make_loader(test_set, batch_size=1000, train=False, input_size=(1, 8, 8))
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    assert correct / len(test_set) == pytest.approx(saved["test"]["top1"])


def test_aux_loss_is_ce_plus_weighted_aux_ce():
    torch.manual_seed(0)
    logits, aux, y = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,))
    loss, out = loss_fn(AuxOutput(logits, (aux,)), y, label_smoothing=0.0, aux_weights=(0.3,))
    by_hand = -logits.log_softmax(1)[range(6), y].mean() - 0.3 * aux.log_softmax(1)[range(6), y].mean()
    assert torch.allclose(loss, by_hand) and out is logits


def test_label_smoothing_by_hand():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    loss, _ = loss_fn(logits, y, label_smoothing=0.1, aux_weights=())
    logp = logits.log_softmax(1)
    by_hand = (0.9 * -logp[range(5), y] + 0.1 * -logp.mean(1)).mean()
    assert torch.allclose(loss, by_hand)


def test_aux_heads_are_trained_with_the_recipes_weight(tmp_path):
    torch.manual_seed(0)
    model = AuxNet()
    before = model.aux.weight.detach().clone()
    _fit(model, tmp_path, epochs=1, recipe="googlenet", lr=0.05, random_resized_crop=False)
    assert not torch.equal(before, model.aux.weight.detach())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["aux_weight"] == 0.3


@pytest.mark.parametrize("options", [
    {"precision": "bf16"},
    {"precision": "fp16"},  # GradScaler on
    {"channels_last": True},
    {"compile": True, "compile_backend": "eager"},
    {"schedule": "plateau"}, {"schedule": "cosine", "warmup_epochs": 0.5}, {"schedule": "step", "step_epochs": 1.0},
])
def test_precisions_memory_formats_compile_and_schedules_train(tmp_path, options):
    torch.manual_seed(0)
    results = _fit(TinyNet(), tmp_path, epochs=2, **options)
    assert torch.isfinite(torch.tensor(results["test"]["loss"]))
    assert results["precision"] == options.get("precision", "fp32")


def test_progress_one_line_per_epoch_or_a_bar(tmp_path, capsys):
    _fit(TinyNet(), tmp_path, name="a", epochs=2, progress="lines")
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "img/s" in out and "top-1" in out
    _fit(TinyNet(), tmp_path, name="b", epochs=1, progress="bar")
    captured = capsys.readouterr()
    assert "loss=" in captured.err and "acc=" in captured.err and "img_s=" in captured.err


def test_a_run_is_repeatable(tmp_path):
    # Same weights, same seed: the same data order, dropout draws and results, bit for bit.
    torch.manual_seed(1)
    m1 = TinyNet()
    torch.manual_seed(1)
    m2 = TinyNet()
    r1, r2 = _fit(m1, tmp_path, name="c", epochs=2), _fit(m2, tmp_path, name="d", epochs=2)
    assert r1["test"] == r2["test"] and r1["model"] == "tinynet"
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_cuda_is_refused_clearly_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="CUDA is not available"):
        _fit(TinyNet(), tmp_path, device="cuda")
