"""compare: the join, accuracy sources, fits and fronts against hand computations, and
the figures' data equal to the table. Bench records are written by the test (no timing)."""
import csv
import json

import numpy as np
import pytest

from cnnlab.bench.compare import compare, linear_fit, pareto_front, read_accuracy
from cnnlab.cli import main

# torchvision's published figures (independent of cnnlab.analyze): params and MACs per image at 224
TV = {"resnet18": (11_689_512, 1.814073344), "resnet50": (25_557_032, 4.089184256),
      "squeezenet1_1": (1_235_496, 0.349151936)}
GMAC_PER_S = 50.0  # the fake machine's speed: time = operations / 50 GMAC/s


def _record(model, bs, *, precision="fp32", energy=None, peak_mib=100.0):
    gmacs = TV[model][1]
    median_ms = gmacs * bs / GMAC_PER_S * 1000
    return {"type": "result", "model": model, "batch_size": bs, "mode": "infer", "precision": precision,
            "device": "cpu", "input_size": [3, 224, 224], "channels_last": False, "compile": False, "threads": 2,
            "status": "ok", "runs": 10, "stable": True,
            "latency_ms": {"median": median_ms, "p90": median_ms * 1.1, "p99": median_ms * 1.2, "mean": median_ms},
            "images_per_s": bs / (median_ms / 1000), "ms_per_image": median_ms / bs,
            "memory": {"peak_bytes": int(peak_mib * bs * 2**20), "method": "fake"},
            "energy": energy or {"available": False, "reason": "no meter in this test"}}


@pytest.fixture
def bench_file(tmp_path):
    path = tmp_path / "bench.jsonl"
    lines = [{"type": "env", "cpu": "test cpu", "threads": 2, "torch": "x", "cnnlab": "y", "cpu_count": 2}]
    for m in TV:
        for bs in (1, 16):
            lines.append(_record(m, bs))
    lines.append(_record("resnet18", 1, precision="bf16"))  # other settings: never mixed in
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_join_and_figures_equal_the_table(tmp_path, bench_file):
    out = tmp_path / "cmp"
    result = compare(list(TV), bench_file=str(bench_file), run_missing=False, out=str(out))
    rows = {r["model"]: r for r in result.rows}
    for m, (params, gmacs) in TV.items():
        assert rows[m]["params"] == params
        assert rows[m]["gmacs"] == pytest.approx(gmacs)
        assert rows[m]["ms_per_image_bs1"] == pytest.approx(gmacs / GMAC_PER_S * 1000)
    # accuracy: published for resnet18/50, none for squeezenet1_1 (unavailable, not guessed)
    assert rows["resnet18"]["top1"] == 69.758 and rows["resnet18"]["accuracy_source"].startswith("published")
    assert rows["squeezenet1_1"]["top1"] is None and rows["squeezenet1_1"]["accuracy_source"].startswith("unavailable")
    assert rows["resnet18"]["accuracy_density"] == pytest.approx(69.758 / 11.689512)
    # the files hold the same as the rows
    table = {r["model"]: r for r in json.loads((out / "table.json").read_text())}
    with open(out / "fig1_accuracy_vs_ops.csv") as f:
        fig1 = list(csv.DictReader(f))
    assert [r["model"] for r in fig1] == ["resnet18", "resnet50"]
    for r in fig1:
        assert float(r["gmacs"]) == pytest.approx(table[r["model"]]["gmacs"])
        assert float(r["top1"]) == table[r["model"]]["top1"]
        assert int(r["params"]) == table[r["model"]]["params"]
    with open(out / "fig9_accuracy_density.csv") as f:
        for r in csv.DictReader(f):
            assert float(r["top1_per_m_params"]) == pytest.approx(table[r["model"]]["accuracy_density"])
    with open(out / "table.csv") as f:
        csv_rows = {r["model"]: r for r in csv.DictReader(f)}
    assert csv_rows["squeezenet1_1"]["top1"] == ""
    assert float(csv_rows["resnet50"]["images_per_s_bs1"]) == pytest.approx(table["resnet50"]["images_per_s_bs1"])
    for name in ("fig1_accuracy_vs_ops", "fig2_time_vs_batch", "fig4_memory_vs_batch", "fig6_ops_vs_time",
                 "fig8_accuracy_vs_throughput", "fig9_accuracy_density", "fig5_memory_vs_params"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").exists(), name
    # operations are exactly proportional to time here: the fit must find 50 GMAC/s, R² = 1
    fit = result.figures["fig6_ops_vs_time"]["fit"]
    assert fit["slope"] * 1000 == pytest.approx(GMAC_PER_S) and fit["r2"] == pytest.approx(1.0)
    # no energy meter: figure 3 is not drawn, and the report says why
    assert not (out / "fig3_power_vs_batch.png").exists()
    report = (out / "report.md").read_text()
    assert "Unavailable: no energy meter: no meter in this test" in report
    assert "| resnet18 | 69.8 |" in report


def test_measured_accuracy_file_is_used(tmp_path, bench_file):
    acc = tmp_path / "acc.csv"
    acc.write_text("model,top1,top5\nsqueezenet1_1,58.2,80.6\nresnet18,70.1,\n")
    result = compare(["resnet18", "squeezenet1_1"], bench_file=str(bench_file), accuracy_file=str(acc),
                     run_missing=False, out=str(tmp_path / "c"), figures=False)
    rows = {r["model"]: r for r in result.rows}
    assert rows["squeezenet1_1"]["top1"] == 58.2 and rows["squeezenet1_1"]["top5"] == 80.6
    assert rows["resnet18"]["top1"] == 70.1 and rows["resnet18"]["accuracy_source"] == "measured (acc.csv)"


def test_energy_when_measured(tmp_path):
    path = tmp_path / "b.jsonl"
    e = {"available": True, "energy_per_image_j": 0.5, "avg_power_w": 40.0, "source": "RAPL package-0"}
    path.write_text("".join(json.dumps(_record("resnet18", bs, energy=e)) + "\n" for bs in (1, 4)))
    result = compare(["resnet18"], bench_file=str(path), run_missing=False, out=str(tmp_path / "c"))
    assert result.rows[0]["energy_per_image_j"] == 0.5
    with open(tmp_path / "c" / "fig3_power_vs_batch.csv") as f:
        assert [float(r["avg_power_w"]) for r in csv.DictReader(f)] == [40.0, 40.0]


def test_linear_fit_against_numpy():
    assert linear_fit([0, 1, 2], [1, 3, 5]) == {"slope": 2.0, "intercept": 1.0, "r2": 1.0, "n": 3}
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 10, 20)
    ys = 3 * xs + rng.normal(0, 2, 20)
    fit = linear_fit(list(xs), list(ys))
    slope, intercept = np.polyfit(xs, ys, 1)
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    assert fit["r2"] == pytest.approx(np.corrcoef(xs, ys)[0, 1] ** 2)
    with pytest.raises(ValueError):
        linear_fit([1], [1])


def test_pareto_front_by_hand():
    pts = [("fast", 100, 60), ("accurate", 10, 80), ("dominated", 50, 55), ("middle", 50, 70), ("tie", 50, 70)]
    # "dominated" is beaten by "middle" (as fast, more accurate); "middle" and "tie" do not beat each other
    # fastest first; equal speeds by name, descending
    assert pareto_front(pts) == ["fast", "tie", "middle", "accurate"]


def test_bad_accuracy_files(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text('[{"model": "resnet18"}]')
    with pytest.raises(ValueError, match="needs 'model' and 'top1'"):
        read_accuracy(str(bad))
    bad.write_text('{"resnet18": {"top1": 170}}')
    with pytest.raises(ValueError, match="not a percentage"):
        read_accuracy(str(bad))
    with pytest.raises(ValueError, match="cannot read"):
        read_accuracy(str(tmp_path / "missing.json"))
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"model": "resnet18", "top1": 70}\n{"model": "resnet50", "top1": "76.5"}\n')
    assert {k: v["top1"] for k, v in read_accuracy(str(ok)).items()} == {"resnet18": 70.0, "resnet50": 76.5}


def test_cli_compare_no_run(capsys, tmp_path, bench_file):
    rc = main(["compare", "resnet18", "resnet50", "--bench", str(bench_file), "--no-run", "--out", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert rc == 0 and "resnet50" in out and "top-1 %" in out
    assert (tmp_path / "c" / "report.md").exists() and "figure(s)" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\nnot json either\n")
    rc = main(["compare", "resnet18", "--bench", str(bad), "--no-run", "--out", str(tmp_path / "d")])
    assert rc == 2 and "is not a cnnlab bench record" in capsys.readouterr().err


def test_cpu_clock_takes_the_cpu_times(tmp_path):
    path = tmp_path / "b.jsonl"
    recs = []
    for bs in (1, 16):
        r = _record("resnet18", bs)
        r["cpu_ms"] = {"median": 10.0 * bs, "p90": 11.0 * bs, "p99": 12.0 * bs, "mean": 10.0 * bs}
        recs.append(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    result = compare(["resnet18"], bench_file=str(path), run_missing=False, out=str(tmp_path / "c"), clock="cpu",
                     figures=False)
    row = result.rows[0]
    assert row["ms_per_image_bs1"] == 10.0 and row["images_per_s_bs1"] == pytest.approx(100.0)
    assert row["images_per_s_max"] == pytest.approx(16 / 0.160)
    wall = compare(["resnet18"], bench_file=str(path), run_missing=False, out=str(tmp_path / "w"), figures=False)
    assert wall.rows[0]["ms_per_image_bs1"] == pytest.approx(TV["resnet18"][1] / GMAC_PER_S * 1000)
    del recs[0]["cpu_ms"]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(ValueError, match="no CPU times"):
        compare(["resnet18"], bench_file=str(path), run_missing=False, out=str(tmp_path / "c2"), clock="cpu")
