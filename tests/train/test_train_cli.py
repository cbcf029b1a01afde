"""`cnnlab train` flags reach the run; `cnnlab eval` and `cnnlab predict` read its checkpoint."""
import contextlib
import io
import json

import pytest
import torch

from cnnlab import data as cdata
from cnnlab.cli import main
from cnnlab.train import load_checkpoint
from cnnlab.train.inference import model_from_checkpoint

SMALL_RUN = ["--dataset", "digits", "--image-size", "8", "--train-samples", "128", "--test-samples", "64",
             "--batch-size", "32", "--progress", "none"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "resnet20", *SMALL_RUN, "--epochs", "2", "--lr", "0.05", "--milestones", "0.5",
                     "--no-flip", "--label-smoothing", "0.1", "--tracker", "jsonl", "--out", str(out)]) == 0
    (out / "printed.txt").write_text(printed.getvalue())
    return out


def test_flags_override_the_recipe_and_the_rest_comes_from_the_model(run, capsys):
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"]["name"] == "resnet_cifar"  # resnet20 is a CIFAR ResNet (He et al.)
    recipe = config["recipe"]
    assert (recipe["epochs"], recipe["lr"], recipe["milestones"], recipe["flip"], recipe["label_smoothing"]) == \
        (2, 0.05, [0.5], False, 0.1)
    assert recipe["weight_decay"] == 1e-4 and recipe["crop_padding"] == 4  # untouched recipe fields
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in epochs if r.get("kind") == "epoch"] == pytest.approx([0.05, 0.005])


def test_cli_train_prints_the_test_accuracy_and_json(run, tmp_path, capsys):
    results = json.loads((run / "results.json").read_text())
    line = (run / "printed.txt").read_text().strip().splitlines()[-1]
    assert line.startswith(f"resnet20 on digits: test accuracy {100 * results['test']['top1']:.2f}%")
    assert main(["train", "resnet20", *SMALL_RUN, "--epochs", "1", "--train-samples", "32",
                 "--out", str(tmp_path / "b"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "b" / "results.json").read_text())
    assert printed["model"] == "resnet20" and printed["world_size"] == 1
    assert main(["train", "resnet20", *SMALL_RUN, "--epochs", "0", "--out", str(tmp_path / "c")]) == 2
    assert "epochs must be a positive integer" in capsys.readouterr().err


def test_eval_reproduces_the_runs_test_accuracy(run, capsys):
    results = json.loads((run / "results.json").read_text())
    assert main(["eval", str(run / "last.pt"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    # The run evaluated a seeded subset of 64 test images; eval reads the whole test split.
    assert r["model"] == "resnet20" and r["dataset"] == "digits" and r["samples"] == 359
    state = load_checkpoint(run / "last.pt")
    model = model_from_checkpoint(state)
    test_set = cdata.load_dataset("digits", "test")
    loader = cdata.make_loader(test_set, batch_size=512, train=False, input_size=(3, 8, 8))
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    assert r["top1"] == pytest.approx(correct / len(test_set))
    assert 0 <= results["test"]["top1"] <= 1


def test_predict_agrees_with_the_evaluation_pipeline(run, tmp_path, capsys):
    from PIL import Image

    test_set = cdata.load_dataset("digits", "test")
    paths = []
    for i in range(6):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(test_set.images[i, 0].numpy(), mode="L").save(path)
        paths.append(str(path))
    assert main(["predict", str(run / "last.pt"), *paths, "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [p["image"] for p in preds] == paths
    for p in preds:
        probs = [t["probability"] for t in p["top"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(t["class"] in test_set.classes for t in p["top"])

    model = model_from_checkpoint(load_checkpoint(run / "last.pt"))
    loader = cdata.make_loader(test_set.subset(list(range(6))), batch_size=6, train=False, input_size=(3, 8, 8))
    with torch.no_grad():
        x, _ = next(iter(loader))
        expected = model(x).softmax(1)
    assert [p["top"][0]["index"] for p in preds] == expected.argmax(1).tolist()
    assert [p["top"][0]["probability"] for p in preds] == pytest.approx(expected.max(1).values.tolist(), abs=1e-5)

    assert main(["predict", str(run / "last.pt"), str(tmp_path / "missing.png")]) == 2
    assert "no image at" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert main(["predict", str(run / "last.pt"), str(tmp_path / "bad.png")]) == 2
    assert "not an image Pillow can read" in capsys.readouterr().err


def test_a_folder_trained_run_evaluates_and_predicts_as_it_trained(tmp_path, capsys):
    """Train LeNet-5 on PNG class folders of real digits; `eval` reproduces the run's test
    accuracy and `predict` its per-image scores, with the folder's own grayscale statistics."""
    from PIL import Image

    mnist = cdata.load_dataset("mnist_5k", "test")
    rows = {"train": [i for i in range(1000) if i % 10 < 3], "test": [i for i in range(1000) if i % 10 == 3]}
    for split, rows in rows.items():
        for i in rows:
            folder = tmp_path / "digits" / split / str(int(mnist.labels[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mnist.images[i, 0].numpy(), "L").save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "lenet5", "--dataset", "imagefolder", "--data-root", str(tmp_path / "digits"),
                 "--epochs", "2", "--num-workers", "0", "--progress", "none", "--out", str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["dataset_channels"] == 1 and len(config["model"]["mean"]) == 1
    assert config["model"]["mean"][0] < 0.3  # measured on the dark digit images, not ImageNet's 0.485
    assert main(["eval", str(out / "last.pt"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["samples"] == results["test"]["samples"] == 100
    assert r["top1"] == results["test"]["top1"] and r["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)
    # predict on the test PNGs gives the evaluation's own argmax, image by image
    test_set = cdata.load_dataset("imagefolder", "test", root=str(tmp_path / "digits"), mean=config["model"]["mean"],
                                  std=config["model"]["std"])
    paths = [p for p, _ in test_set.samples[:5]]
    assert main(["predict", str(out / "last.pt"), *paths, "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    model = model_from_checkpoint(load_checkpoint(out / "last.pt"))
    loader = cdata.make_loader(test_set.subset(list(range(5))), batch_size=5, train=False, input_size=(1, 32, 32),
                               num_workers=0)
    with torch.no_grad():
        expected = model(next(iter(loader))[0]).softmax(1)
    assert [p["top"][0]["index"] for p in preds] == expected.argmax(1).tolist()
    assert [p["top"][0]["probability"] for p in preds] == pytest.approx(expected.max(1).values.tolist(), abs=1e-5)


def test_eval_refuses_another_datasets_labels(run, capsys):
    # the run trained on digits ("0".."9"); shapes also has 10 classes, with other names
    assert main(["eval", str(run / "last.pt"), "--dataset", "shapes", "--test-samples", "8"]) == 2
    err = capsys.readouterr().err
    assert "classes are not shapes's" in err and len(err.strip().splitlines()) == 1
