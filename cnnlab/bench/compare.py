"""``compare``: published figures + ``cnnlab.analyze`` + measurements, per model, as
tables and the figures of Canziani, Paszke & Culurciello, "An Analysis of Deep Neural
Network Models for Practical Applications" (2017, arXiv:1605.07678).

Conventions: one multiply-add = one MAC = two FLOPs; "operations" in the figures are
MACs of conv + linear layers per image (torchvision's "GFLOPS" figures are MACs too).
Accuracy is the measured one where a results file gives it (``accuracy_file``), else
the published one from the registry, with its source; where neither exists it is
unavailable and the model is left out of the accuracy figures (never guessed).

Measurements come from bench records made with the same settings as the comparison
(mode, precision, device, layout, compile, input size); the most recent record of a
(model, batch size) wins. What is missing is measured with :func:`cnnlab.bench.bench`
into ``OUT/bench.jsonl`` (resumable), unless ``run_missing=False``.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field

__all__ = ["compare", "Comparison", "LECTURE_PRESET", "read_accuracy", "linear_fit", "pareto_front"]

#: The networks of the lecture's comparison slide (Canziani et al.'s Fig. 1 set, as registered here).
LECTURE_PRESET = ("alexnet", "vgg16", "vgg19", "googlenet", "inception_v3", "inception_v4", "resnet18",
                  "resnet50", "resnet152", "resnext50_32x4d", "densenet121", "squeezenet1_1", "senet154",
                  "nasnetamobile")
#: Batch sizes measured when nothing says otherwise: 1 and 16 are Canziani's Fig. 8 points; 4 adds
#: a middle point for the batch-size figures. The lecture preset at these takes ~6-8 min on 2 cores.
DEFAULT_BATCH_SIZES = (1, 4, 16)
_DATASET_LABEL = {"imagenet": "ImageNet", "cifar": "CIFAR", "mnist": "MNIST"}


def linear_fit(xs, ys) -> dict:
    """Least-squares line y = a*x + b and its coefficient of determination R²."""
    n = len(xs)
    if n < 2:
        raise ValueError("a line needs at least two points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all x values are equal")
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    b = my - a * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a * x + b)) ** 2 for x, y in zip(xs, ys))
    return {"slope": a, "intercept": b, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0, "n": n}


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Names of the points (name, speed, accuracy) that no other point beats on both
    (at least as fast and as accurate, and better on one), fastest first."""
    front = []
    for name, s, a in points:
        if not any((s2 >= s and a2 >= a) and (s2 > s or a2 > a) for _, s2, a2 in points):
            front.append((s, name))
    return [n for _, n in sorted(front, reverse=True)]


def read_accuracy(path: str) -> dict[str, dict]:
    """Accuracies by model from JSON (``{model: {top1, ...}}`` or a list of records),
    JSONL or CSV; every record needs ``model`` and ``top1`` (percent); ``top5``,
    ``dataset`` and ``source`` (default "measured") are optional."""
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the accuracy file {path}: {exc}") from None
    records: list[dict] = []
    if path.endswith(".csv"):
        records = list(csv.DictReader(text.splitlines()))
    else:
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                data = [{"model": k, **v} for k, v in data.items()]
            records = data
        except ValueError:
            try:
                records = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError:
                raise ValueError(f"{path} is neither JSON, JSONL nor CSV") from None
    out = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not r.get("model") or r.get("top1") in (None, ""):
            raise ValueError(f"{path} record {i + 1} needs 'model' and 'top1' (percent)")
        try:
            top1 = float(r["top1"])
            top5 = float(r["top5"]) if r.get("top5") not in (None, "") else None
        except (TypeError, ValueError):
            raise ValueError(f"{path} record {i + 1}: top1/top5 must be numbers") from None
        if not 0 <= top1 <= 100:
            raise ValueError(f"{path} record {i + 1}: top1 {top1} is not a percentage")
        out[r["model"]] = {"top1": top1, "top5": top5, "dataset": r.get("dataset") or "measured",
                           "source": f"{r.get('source') or 'measured'} ({os.path.basename(path)})"}
    return out


@dataclass
class Comparison:
    """The joined rows, the measurements behind them and the figures written."""

    rows: list[dict]
    measurements: dict  # model -> {batch_size: record}
    figures: dict = field(default_factory=dict)  # name -> {"png", "svg", "csv", "reading"}
    notes: list[str] = field(default_factory=list)
    env: dict | None = None

    def table_rows(self) -> list[tuple[str, ...]]:
        def f(v, spec):
            return "—" if v is None else format(v, spec)

        header = ("model", "top-1 %", "params M", "GMACs", "act. MB", "ms/img @1", "img/s @1", "img/s @max",
                  "peak MB @1", "J/img", "top-1/M params")
        rows = [header]
        for r in self.rows:
            rows.append((r["model"], f(r["top1"], ".1f"), f(r["params"] / 1e6, ".2f"), f(r["gmacs"], ".2f"),
                         f(r["activations_mb"], ".1f"), f(r["ms_per_image_bs1"], ".2f"),
                         f(r["images_per_s_bs1"], ".1f"), f(r["images_per_s_max"], ".1f"),
                         f(r["peak_mb_bs1"], ".1f"), f(r["energy_per_image_j"], ".3f"),
                         f(r["accuracy_density"], ".2f")))
        return rows

    def table(self, markdown: bool = False) -> str:
        from cnnlab.bench.export import format_table

        return format_table(self.table_rows(), markdown=markdown)


def _settings_match(rec: dict, s: dict, size: list[int]) -> bool:
    return (rec.get("type") == "result" and rec.get("mode") == s["mode"] and rec.get("precision") == s["precision"]
            and rec.get("device") == s["device"] and bool(rec.get("channels_last")) == s["channels_last"]
            and bool(rec.get("compile")) == s["compile"] and list(rec.get("input_size") or []) == size)


def _on_clock(rec: dict, clock: str) -> dict:
    """The record with its times taken from ``clock``: the wall clock as measured, or the
    process CPU time per run (``cpu_ms``)."""
    if clock == "wall" or rec.get("status") != "ok":
        return rec
    if "cpu_ms" not in rec:
        raise ValueError(f"a bench record of {rec['model']} has no CPU times (made by an older cnnlab); "
                         "measure again or compare with the wall clock")
    rec = dict(rec, latency_ms=dict(rec["cpu_ms"]), clock="cpu")
    median_s = rec["latency_ms"]["median"] / 1000
    rec["ms_per_image"] = median_s * 1000 / rec["batch_size"]
    rec["images_per_s"] = rec["batch_size"] / median_s if median_s > 0 else None
    return rec


def _load_bench(paths: list[str]) -> tuple[list[dict], dict | None]:
    from cnnlab.bench.runner import read_results

    records, env = [], None
    for p in paths:
        if not os.path.exists(p):
            continue
        try:
            recs = read_results(p)
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the bench file {p}: {exc}") from None
        for r in recs:
            if r.get("type") == "env":
                env = r
        records += recs
    return records, env


def compare(
    models=None,
    *,
    preset: str | None = None,
    family: str | None = None,
    all_models: bool = False,
    bench_file: str | None = None,
    accuracy_file: str | None = None,
    out: str = "compare",
    batch_sizes=None,
    run_missing: bool = True,
    progress: bool = False,
    figures: bool = True,
    input_size: int | None = None,
    mode: str = "infer",
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    min_time: float = 0.5,
    warmup: int = 2,
    clock: str = "wall",
) -> Comparison:
    """Join, per model, accuracy, parameters, MACs, activation memory and measurements;
    write ``table.(md|csv|json)``, the figures (PNG, SVG and CSV each) and ``report.md``
    into ``out``. Give the models as names, or ``preset="lecture"``, ``family=`` or
    ``all_models=True``. ``clock="cpu"`` takes the times from the CPU time of the
    measuring process instead of the wall clock (with one thread: what an idle core
    needs, little changed by other processes on a busy machine)."""
    from cnnlab.anatomy import analyze
    from cnnlab.bench.runner import BenchConfig, bench, check_config
    from cnnlab.registry import list_models, model_info

    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    chosen = sum(bool(x) for x in (models, preset, family, all_models))
    if chosen != 1:
        raise ValueError("give models, or one of --preset, --family, --all")
    if preset is not None:
        if preset != "lecture":
            raise ValueError(f"unknown preset {preset!r}; there is: lecture")
        models = list(LECTURE_PRESET)
    elif family is not None:
        models = list_models(family=family)
        if not models:
            raise ValueError(f"no model of family {family!r}")
    elif all_models:
        models = list_models()
    models = list(models)
    if bench_file is not None and not os.path.isfile(bench_file):
        raise ValueError(f"--bench {bench_file}: " + ("a directory, not a bench file" if os.path.isdir(bench_file)
                                                      else "no such file"))
    accuracy = read_accuracy(accuracy_file) if accuracy_file else {}
    explicit_sizes = batch_sizes is not None
    sizes = tuple(batch_sizes) if explicit_sizes else DEFAULT_BATCH_SIZES
    cfg = BenchConfig(batch_sizes=sizes, input_size=input_size, mode=mode, precision=precision,
                      channels_last=channels_last, compile=compile, device=device, threads=threads,
                      min_time=min_time, warmup=warmup)
    jobs = dict(check_config(models, cfg))  # bad settings, unknown models, too-small inputs: before any file
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; give a folder")
    os.makedirs(out, exist_ok=True)
    own = os.path.join(out, "bench.jsonl")
    if bench_file is not None:  # unreadable or foreign files fail here, before anything is measured
        _load_bench([bench_file])
    settings = {"mode": mode, "precision": precision, "device": device, "channels_last": channels_last,
                "compile": compile}

    def measured() -> tuple[dict, dict | None]:
        recs, env = _load_bench([p for p in (bench_file, own) if p])
        by_model: dict[str, dict[int, dict]] = {m: {} for m in models}
        for r in recs:
            if r.get("model") in by_model and _settings_match(r, settings, jobs[r["model"]]) \
                    and (threads is None or r.get("threads") == threads) and r.get("status") in ("ok", "oom"):
                by_model[r["model"]][r["batch_size"]] = _on_clock(r, clock)
        return by_model, env

    by_model, env = measured()
    notes = []
    if run_missing:
        # every batch size asked for (or, without --bench, the defaults: so that a stopped comparison
        # continues where it stopped); with --bench and no --batch-sizes only models it lacks altogether
        ensure = explicit_sizes or bench_file is None
        missing = [m for m in models
                   if (ensure and any(bs not in by_model[m] for bs in sizes)) or (not ensure and not by_model[m])]
        if missing:
            bench(missing, sizes, out=own, resume=True, progress=progress, config=cfg)
            by_model, env = measured()
    rows = []
    for m in models:
        info = model_info(m)
        size = jobs[m]
        a = analyze(m, tuple(size), batch_size=1, training_estimate=False)
        pub = info.published
        acc = accuracy.get(m)
        if acc is None and pub.top1 is not None:
            acc = {"top1": pub.top1, "top5": pub.top5, "dataset": pub.dataset or _DATASET_LABEL[info.dataset],
                   "source": f"published: {pub.source}"}
        elif acc is None and pub.error is not None and info.dataset != "imagenet":
            acc = {"top1": round(100 - pub.error, 4), "top5": None, "dataset": pub.dataset,
                   "source": f"published test error {pub.error}%: {pub.source}"}
        meas = by_model[m]
        ok = {bs: r for bs, r in sorted(meas.items()) if r["status"] == "ok"}
        first = ok.get(min(ok)) if ok else None
        last = ok.get(max(ok)) if ok else None
        energy = [r["energy"]["energy_per_image_j"] for r in ok.values() if r.get("energy", {}).get("available")]
        reason = next((r["energy"].get("reason") for r in ok.values()
                       if r.get("energy") and not r["energy"].get("available")), None)
        top1 = acc["top1"] if acc else None
        row = {
            "model": m, "family": info.family, "year": info.paper.year,
            "top1": top1, "top5": acc.get("top5") if acc else None,
            "accuracy_dataset": acc["dataset"] if acc else None,
            "accuracy_source": acc["source"] if acc else
            ("unavailable: no top-1 published in the registry and none measured (give --accuracy FILE)"),
            "params": a.totals["params"], "macs": a.totals["macs"], "gmacs": a.totals["macs"] / 1e9,
            "activations_mb": a.totals["forward_bytes_batch"] / 2**20, "weights_mb": a.totals["params_bytes"] / 2**20,
            "input_size": size,
            "measured_batch_sizes": sorted(ok), "oom_batch_sizes": sorted(bs for bs, r in meas.items() if r["status"] == "oom"),
            "ms_per_image_bs1": ok[1]["ms_per_image"] if 1 in ok else None,
            "images_per_s_bs1": ok[1]["images_per_s"] if 1 in ok else None,
            "max_batch_size": max(ok) if ok else None,
            "images_per_s_max": last["images_per_s"] if last else None,
            "peak_mb_bs1": ok[1]["memory"]["peak_bytes"] / 2**20 if 1 in ok and ok[1]["memory"].get("peak_bytes") is not None else None,
            "peak_mb_smallest": first["memory"]["peak_bytes"] / 2**20 if first and first["memory"].get("peak_bytes") is not None else None,
            "energy_per_image_j": min(energy) if energy else None,
            "energy_note": None if energy else (reason or "not measured"),
            "accuracy_density": top1 / (a.totals["params"] / 1e6) if top1 is not None else None,
        }
        rows.append(row)
    if not any(by_model.values()):
        notes.append("no measurements: run without --no-run or give --bench FILE")
    result = Comparison(rows=rows, measurements=by_model, notes=notes, env=env)
    _write_tables(result, out)
    if figures:
        from cnnlab.bench.figures import make_figures

        result.figures = make_figures(result, out)
    from cnnlab.bench.figures import write_report

    write_report(result, out, settings={**settings, "input_size": input_size or "each model's default",
                                        "threads": threads or "PyTorch's default", "clock": clock})
    return result


def _write_tables(result: Comparison, out: str) -> None:
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(result.table(markdown=True))
    with open(os.path.join(out, "table.json"), "w") as f:
        json.dump(result.rows, f, indent=2)
    fields = [k for k in result.rows[0] if k not in ("input_size", "measured_batch_sizes", "oom_batch_sizes")]
    with open(os.path.join(out, "table.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in result.rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in fields})
