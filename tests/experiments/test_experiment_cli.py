"""`cnnlab experiment` end to end: a tiny training experiment through the CLI."""
import json

import pytest

from cnnlab.cli import main
from cnnlab.experiments import list_experiments


def test_list(capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("one-by-one", "bottleneck", "small-filters", "degradation", "stochastic-depth", "wide-vs-deep",
                 "ensemble", "aux-heads", "dense-efficiency"):
        assert name in out
    assert main(["experiment", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_experiments()


def test_run_small_filters_end_to_end(tmp_path, capsys):
    out = tmp_path / "sf"
    assert main(["experiment", "run", "small-filters", "--seeds", "2", "--out", str(out), "--threads", "1",
                 "--progress", "none"]) == 0
    printed = capsys.readouterr().out
    assert "small-filters (smoke, 2 seed(s), digits):" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == "small-filters" and res["seeds"] == [0, 1] and res["dataset"] == "digits"
    train = [r for r in res["runs"] if r["kind"] == "train"]
    assert len(train) == 4 and {r["arm"] for r in train} == {"3x3-x3", "7x7-x1"}
    for r in train:
        assert r["settings"]["epochs"] == 1 and r["seed"] in (0, 1)
        assert [e["epoch"] for e in r["epochs"]] == [1] and "train_loss" in r["epochs"][0]
        assert 0.0 <= r["metrics"]["test_top1"] <= 1.0
    acc = res["summary"]["test_top1"]["3x3-x3"]
    values = [r["metrics"]["test_top1"] for r in train if r["arm"] == "3x3-x3"]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(sum(values) / 2)
    # the anatomy checks: 27C^2 and 49C^2 for C = 8 by hand
    anatomy = res["summary"]["anatomy"]
    assert anatomy["3x3-x3"]["params"] == 27 * 64 and anatomy["7x7-x1"]["params"] == 49 * 64
    assert anatomy["3x3-x3"]["receptive_field"] == anatomy["7x7-x1"]["receptive_field"] == 7
    assert res["verdict"] in ("held", "did not hold", "inconclusive")
    for ext in ("png", "svg"):
        assert (out / f"small_filters.{ext}").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## Claim" in report and f"**Verdict: {res['verdict']}**" in report and "small_filters.png" in report

    # resuming a finished experiment repeats no run
    assert main(["experiment", "run", "small-filters", "--seeds", "2", "--out", str(out), "--resume",
                 "--progress", "none"]) == 0
    assert json.loads((out / "results.json").read_text())["runs_executed"] == 0


@pytest.mark.parametrize("argv, message", [
    (["experiment", "run", "nope"], "unknown experiment 'nope'"),
    (["experiment", "run", "degradation", "--dataset", "imagefolder"], "cannot use dataset"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab experiment: error:") and message in err and "\n" not in err


def test_bad_scale_and_seeds_are_refused_by_the_parser(capsys):
    for argv in (["experiment", "run", "bottleneck", "--scale", "huge"],
                 ["experiment", "run", "bottleneck", "--seeds", "0"],
                 ["experiment", "run", "bottleneck", "--device", "tpu"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
