"""`cnnlab search ...` as a user runs it: real trials, export to train/summary/create_model, bad input."""
import json
import time

import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.search.export import export_architecture, read_architecture
from cnnlab.search.spaces import get_space


def _run(capsys, *argv):
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_a_trial_reward_is_the_runs_validation_accuracy(tmp_path):
    from cnnlab.search.trial import train_trial

    spec = {"space": "layers-tiny", "tokens": [1] * 9, "dataset": "digits", "epochs": 1, "seed": 0,
            "out": str(tmp_path / "t"), "val_fraction": 0.2}
    r = train_trial(spec)
    run = json.loads((tmp_path / "t" / "results.json").read_text())
    assert r["reward"] == run["val"]["top1"] and "test" not in r
    assert abs(run["val"]["samples"] - 0.2 * 1437) <= 10  # the held-out split, not the 360 test images
    assert r["params"] == sum(p.numel() for p in get_space("layers-tiny").build([1] * 9, num_classes=10,
                                                                                  in_chans=1).parameters())


@pytest.mark.slow
def test_real_search_rewards_are_validation_accuracy_then_export_train_and_summary(tmp_path, capsys):
    out = tmp_path / "s"
    rc, text, err = _run(capsys, "search", "run", "--space", "layers-tiny", "--strategy", "random", "--budget", "2",
                         "--epochs", "1", "--out", str(out), "--workers", "2", "--seed", "3")
    assert rc == 0, err
    trials = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    assert sorted(t["id"] for t in trials) == [0, 1]
    for t in trials:
        # each trial is a cnnlab.train run; its reward is that run's validation top-1, not its test top-1
        run = json.loads((out / "trials" / f"{t['id']:04d}" / "results.json").read_text())
        assert t["reward"] == run["val"]["top1"]
        assert abs(run["val"]["samples"] - 144) <= 5  # ~10% of digits' 1437 training images held out
        assert "test" not in t
    results = json.loads((out / "results.json").read_text())
    best = max(trials, key=lambda t: t["reward"])
    assert results["final"]["trial"] == best["id"] and 0 <= results["final"]["test"]["top1"] <= 1

    rc, text, _ = _run(capsys, "search", "show", str(out), "--plot", str(tmp_path / "curves.svg"))
    assert rc == 0 and "reward = validation top-1" in text and (tmp_path / "curves.svg").read_text().startswith("<?xml")

    rc, text, _ = _run(capsys, "search", "export", str(out), "-o", str(tmp_path / "best.json"))
    assert rc == 0
    arch = read_architecture(tmp_path / "best.json")
    assert list(arch["tokens"]) == best["tokens"]
    model = cnnlab.create_model(str(tmp_path / "best.json"))
    expected = get_space("layers-tiny").build(best["tokens"], num_classes=10, in_chans=1)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in expected.parameters())
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)

    rc, text, err = _run(capsys, "summary", str(tmp_path / "best.json"))
    assert rc == 0, err
    assert f"{sum(p.numel() for p in expected.parameters()):,}" in text
    rc, text, err = _run(capsys, "train", str(tmp_path / "best.json"), "--dataset", "digits", "--recipe", "fast",
                         "--epochs", "1", "--out", str(tmp_path / "train"), "--progress", "none")
    assert rc == 0, err
    assert json.loads((tmp_path / "train" / "results.json").read_text())["epochs"] == 1


def test_a_nasnet_architecture_file_builds_the_searched_cells(tmp_path):
    space = get_space("nasnet", num_blocks=2, filters=4, stem_chs=8)
    tokens = space.random_tokens(__import__("random").Random(1))
    path = export_architecture(tmp_path / "cell.json", space=space, tokens=tokens, dataset="shapes")
    record = json.loads(path.read_text())
    assert record["arch"]["normal"]["blocks"][0][1] in space.ops and record["input_size"] == [3, 32, 32]
    model = cnnlab.create_model(str(path), num_classes=4)
    normal, reduction = space.genotypes(tokens)
    assert model.cell_0.genotype == normal and model.reduction_cell_1.genotype == reduction
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert cnnlab.model_info(str(path)).input_size == (3, 32, 32)


@pytest.mark.parametrize("argv,message", [
    (["--space", "resnet", "--strategy", "random", "--budget", "2"], "unknown search space 'resnet'"),
    (["--space", "layers", "--strategy", "annealing", "--budget", "2"], "unknown search strategy 'annealing'"),
    (["--space", "layers", "--strategy", "random", "--budget", "0"], "--budget must be at least 1"),
    (["--space", "layers", "--strategy", "random", "--budget", "2", "--workers", "0"], "workers must be a positive"),
    (["--space", "layers", "--strategy", "random", "--budget", "2", "--dataset", "nope"], "nope"),
    (["--space", "layers", "--strategy", "random", "--budget", "2", "--space-option", "num_layers=-1"], "num_layers"),
    (["--space", "nasnet", "--strategy", "random", "--budget", "2", "--tabular"], "no tabular benchmark"),
    (["--space", "layers", "--strategy", "random", "--budget", "2", "--resume"], "--resume needs --out"),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, argv, message):
    rc, out, err = _run(capsys, "search", "run", *argv, "--out", str(tmp_path / "s")) if "--resume" not in argv else \
        _run(capsys, "search", "run", *argv)
    assert rc == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "state.pt").exists()


def test_a_ray_address_that_does_not_answer_fails_fast(capsys, tmp_path):
    pytest.importorskip("ray")
    t0 = time.perf_counter()
    rc, out, err = _run(capsys, "search", "run", "--space", "layers-tiny", "--strategy", "random", "--budget", "2",
                        "--backend", "ray", "--address", "127.0.0.1:9", "--out", str(tmp_path / "s"))
    assert rc == 2 and "no Ray cluster answers" in err and "127.0.0.1:9" in err
    assert time.perf_counter() - t0 < 15
    assert not (tmp_path / "s").exists()
    rc, out, err = _run(capsys, "search", "run", "--space", "layers-tiny", "--strategy", "random", "--budget", "2",
                        "--backend", "ray", "--address", "no-port-here", "--out", str(tmp_path / "s"))
    assert rc == 2 and "expected HOST:PORT" in err


def test_bad_architecture_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an architecture file"):
        cnnlab.create_model(str(bad))
    bad.write_text(json.dumps({"format": "cnnlab-architecture", "space": "layers-tiny", "tokens": [5] * 9,
                               "input_size": [1, 8, 8], "num_classes": 10}))
    with pytest.raises(ValueError, match="must be in 0..1"):
        cnnlab.create_model(str(bad))
    with pytest.raises(ValueError, match="unknown model"):
        cnnlab.create_model(str(tmp_path / "missing.json"))
