"""--layer-stats N: layers.jsonl holds numbers an independent computation gives, and
recording them changes nothing in the training."""
import json

import pytest
import torch
from torch import nn

from cnnlab.data import load_dataset, make_loader
from cnnlab.train import fit, load_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.layerstats import MAX_LAYERS, select_layers
from train_testkit import DATASET, SMALL, TinyNet

TIMING = {"seconds", "epoch_seconds", "images_per_second", "wall_seconds"}


def _run(out, seed_model=0, **kw):
    torch.manual_seed(seed_model)  # the same initial weights in every run
    kw = {"recipe": "fast", "epochs": 2, "batch_size": 32, "progress": "none", "threads": 1, **SMALL, **kw}
    return fit(TinyNet(), DATASET, out=str(out), **kw)


def _lines(path, drop=TIMING):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def test_recording_changes_nothing_in_the_training(tmp_path):
    plain = _run(tmp_path / "plain")
    stats = _run(tmp_path / "stats", layer_stats_every=2)
    a, b = load_checkpoint(tmp_path / "plain" / "last.pt"), load_checkpoint(tmp_path / "stats" / "last.pt")
    assert a["step"] == b["step"] == 14
    for key in a["model"]:  # BatchNorm statistics included: the side pass runs in eval mode
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    for ra, rb in zip(a["rng"], b["rng"]):  # the dropout draws went on as without it
        assert torch.equal(ra["torch"], rb["torch"]) and ra["python"] == rb["python"]
    assert plain["test"] == stats["test"] and plain["val"] == stats["val"]
    assert _lines(tmp_path / "plain" / "metrics.jsonl") == _lines(tmp_path / "stats" / "metrics.jsonl")
    assert not (tmp_path / "plain" / "layers.jsonl").exists()
    kinds = [r["kind"] for r in _lines(tmp_path / "stats" / "layers.jsonl")]
    # start, steps 2 4 6 of epoch 1 and its end (step 7), steps 8 10 12 of epoch 2 and its end (step 14)
    assert kinds == ["layers_meta", "layers", "filters", "predictions"] + ["layers"] * 3 + \
        ["layers", "filters", "predictions"] + ["layers"] * 3 + ["layers", "filters", "predictions"]
    config = json.loads((tmp_path / "stats" / "config.json").read_text())
    assert config["config"]["layer_stats_every"] == 2


def test_records_equal_an_independent_computation(tmp_path):
    # no validation split: the fixed images come from the (whole) test set
    _run(tmp_path / "run", layer_stats_every=3, val_fraction=0, test_samples=None)
    rows = _lines(tmp_path / "run" / "layers.jsonl", drop=())
    meta = rows[0]
    assert meta["kind"] == "layers_meta" and meta["batch"]["source"] == "test"
    assert [l["name"] for l in meta["layers"]] == ["features.0", "fc"] and meta["omitted"] == []
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    last = [r for r in rows if r["kind"] == "layers" and r["at"] == "epoch"][-1]
    assert (last["epoch"], last["step"]) == (state["epoch"], state["step"]) == (2, 16)  # 256 images, 8 steps an epoch
    weights = [state["model"]["features.0.weight"], state["model"]["fc.weight"]]
    for i, w in enumerate(weights):
        assert last["weight_mean"][i] == pytest.approx(w.mean().item(), rel=1e-6, abs=1e-9)
        assert last["weight_std"][i] == pytest.approx(w.std().item(), rel=1e-6)
        assert last["weight_norm"][i] == pytest.approx(torch.linalg.vector_norm(w).item(), rel=1e-6)
        assert last["grad_norm"][i] > 0
    start = rows[1]
    assert start["at"] == "start" and start["grad_norm"] == [None, None]  # no step yet, no gradient

    # the activations: the saved model, a hook of our own, the same test images
    model = TinyNet()
    model.load_state_dict(state["model"])
    model.eval()
    test = load_dataset(DATASET, "test")
    x, _ = next(iter(make_loader(test.subset(meta["batch"]["indices"]), batch_size=len(meta["batch"]["indices"]),
                                 train=False, input_size=(1, 8, 8))))
    seen = {}
    for name in ("features.0", "fc"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    with torch.no_grad():
        model(x)
    for i, name in enumerate(("features.0", "fc")):
        out = seen[name]
        assert last["act_mean"][i] == pytest.approx(out.mean().item(), rel=1e-5, abs=1e-7)
        assert last["act_std"][i] == pytest.approx(out.std().item(), rel=1e-5)
        assert last["act_zeros"][i] == (out == 0).sum().item() / out.numel()
        assert last["act_nonpos"][i] == (out <= 0).sum().item() / out.numel()

    # the first layer's filters, scaled by the range of all of them
    filters = [r for r in rows if r["kind"] == "filters"][-1]
    w = weights[0]
    assert filters["shape"] == [8, 1, 3, 3] and filters["layer"] == "features.0"
    want = ((w - w.min()) * 255 / (w.max() - w.min())).round().flatten().int().tolist()
    assert filters["values"] == want

    # top-3 on the fixed images: the saved model's softmax
    preds = [r for r in rows if r["kind"] == "predictions"][-1]
    indices = [item["index"] for item in preds["items"]]
    assert indices == [im["index"] for im in meta["images"]] and len(indices) == 8
    assert sorted({test.labels[i].item() for i in indices}) == list(range(8))  # one per class
    xi, yi = next(iter(make_loader(test.subset(indices), batch_size=8, train=False, input_size=(1, 8, 8))))
    with torch.no_grad():
        probs = torch.softmax(model(xi), dim=1)
    for item, p, y in zip(preds["items"], probs, yi.tolist()):
        assert item["label"] == y
        top = p.topk(3)
        assert [c for c, _ in item["top"]] == top.indices.tolist()
        assert [q for _, q in item["top"]] == pytest.approx(top.values.tolist(), rel=1e-5)
    for im in meta["images"]:
        assert im["shape"] == [1, 8, 8] and len(im["pixels"]) == 64 and max(im["pixels"]) == 255


def test_resume_drops_the_records_after_the_checkpoint_and_goes_on_the_same(tmp_path):
    # a constant learning rate: the first epoch of a 1-epoch run is that of a 2-epoch run
    flat = {"layer_stats_every": 2, "schedule": "constant", "warmup_epochs": 0}
    _run(tmp_path / "whole", **flat)
    cut = tmp_path / "cut"
    _run(cut, epochs=1, **flat)
    # what a run killed during epoch 2 leaves: its first records and a line cut short
    path = cut / "layers.jsonl"
    with open(path, "a") as f:
        f.write(json.dumps({"kind": "layers", "epoch": 2, "step": 8, "at": "step"}) + "\n")
        f.write('{"kind": "layers", "epoch": 2, "st')
    (cut / "results.json").unlink()
    _run(cut, epochs=2, resume=True, **flat)
    resumed, whole = _lines(path), _lines(tmp_path / "whole" / "layers.jsonl")
    # one meta record each (the resumed run's comes where it reopened the file, saying at which step)
    assert [r["step"] for r in resumed if r["kind"] == "layers_meta"] == [7]
    assert [r for r in resumed if r["kind"] != "layers_meta"] == [r for r in whole if r["kind"] != "layers_meta"]
    assert len(resumed) == len(whole) == 16  # meta, start (3), 2 epochs of 3 steps + their end (3)


def test_at_most_64_layers_spread_over_the_depth_and_the_rest_named():
    deep = nn.Sequential(*[nn.Linear(4, 4) for _ in range(100)])
    kept, omitted = select_layers(deep)
    names = [n for n, _ in kept]
    assert len(names) == MAX_LAYERS == 64 and len(omitted) == 36
    assert names[0] == "0" and names[-1] == "99" and not set(names) & set(omitted)
    assert sorted(names + omitted, key=int) == [str(i) for i in range(100)]
    # LeNet-5's partial C3 holds its own kernels: it counts as a layer
    from cnnlab import create_model

    assert [n for n, _ in select_layers(create_model("lenet5"))[0]] == ["c1", "c3", "c5", "f6"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_layer_stats_every_must_be_a_count(bad):
    with pytest.raises(ValueError, match="layer_stats_every"):
        TrainConfig(model="lenet5", layer_stats_every=bad).validate()


def test_the_command_line_flag(tmp_path, capsys):
    from cnnlab.cli import main

    out = tmp_path / "lenet"
    assert main(["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--train-samples", "256",
                 "--test-samples", "64", "--threads", "1", "--progress", "none", "--layer-stats", "4",
                 "--out", str(out)]) == 0
    rows = _lines(out / "layers.jsonl")
    meta = rows[0]
    assert meta["every"] == 4 and [l["name"] for l in meta["layers"]] == ["c1", "c3", "c5", "f6"]
    assert meta["layers"][1]["weight_shapes"] == [[6, 3, 5, 5], [9, 4, 5, 5], [1, 6, 5, 5]]  # C3's partial table
    assert [r["step"] for r in rows if r["kind"] == "layers"] == [0, 4, 7]  # the start, step 4, the epoch's end (7 steps)
    ends = [r for r in rows if r["kind"] == "filters"]
    assert [r["epoch"] for r in ends] == [0, 1] and ends[-1]["shape"] == [6, 1, 5, 5]
