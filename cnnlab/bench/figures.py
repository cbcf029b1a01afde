"""The figures of Canziani et al. (2017, arXiv:1605.07678), made from a comparison,
each saved as PNG and SVG with the data behind it in CSV, and the report that holds them.

Figure numbers follow the paper: 1 top-1 vs operations (bubble area ~ parameters),
2 time per image vs batch size, 3 power vs batch size, 4 memory vs batch size,
5 memory vs parameters, 6 operations vs time, 8 top-1 vs images per second with the
Pareto front, 9 accuracy density (top-1 per million parameters).
"""
from __future__ import annotations

import csv
import os
from collections import Counter

from cnnlab.bench.compare import Comparison, linear_fit, pareto_front

__all__ = ["make_figures", "write_report", "figure_data"]

_REF_BATCH = 16  # Canziani et al.'s Fig. 6 and 8 use a batch of 16 images


def _accuracy_rows(comp: Comparison):
    """Rows with an accuracy, on the dataset most of them share (one axis, one dataset)."""
    rows = [r for r in comp.rows if r["top1"] is not None]
    if not rows:
        return [], None, []
    kinds = Counter(_kind(r["accuracy_dataset"]) for r in rows)
    kind = kinds.most_common(1)[0][0]
    keep = [r for r in rows if _kind(r["accuracy_dataset"]) == kind]
    left = [r["model"] for r in rows if _kind(r["accuracy_dataset"]) != kind]
    return keep, kind, left


def _kind(dataset: str | None) -> str:
    d = (dataset or "").lower()
    for k in ("imagenet", "ilsvrc"):
        if k in d:
            return "ImageNet"
    for k in ("cifar-100", "cifar100"):
        if k in d:
            return "CIFAR-100"
    if "cifar" in d:
        return "CIFAR-10"
    return dataset or "unknown"


def _mb(n):
    return None if n is None else n / 2**20


def _ratio_text(rows) -> str:
    pairs = [r["peak_memory_mb"] / r["est_peak_memory_mb"] for r in rows if r["est_peak_memory_mb"]]
    if not pairs:
        return ""
    pairs.sort()
    return f"; measured / estimate is {pairs[0]:.2f}x to {pairs[-1]:.2f}x (median {pairs[len(pairs) // 2]:.2f}x)"


def _ref_batch(comp: Comparison) -> int | None:
    sizes = {bs for m in comp.measurements.values() for bs, r in m.items() if r["status"] == "ok"}
    if not sizes:
        return None
    if _REF_BATCH in sizes:
        return _REF_BATCH
    return max(sizes)


def figure_data(comp: Comparison) -> dict[str, dict]:
    """Per figure: ``rows`` (what is plotted, also written as CSV), ``reading`` (one or
    two sentences from the data) or ``unavailable`` (why the figure is not made)."""
    figs: dict[str, dict] = {}
    acc, kind, left = _accuracy_rows(comp)
    dropped = f" ({', '.join(left)} left out: accuracy on another dataset)" if left else ""
    no_acc = [r["model"] for r in comp.rows if r["top1"] is None]
    missing = f" No accuracy for {', '.join(no_acc)}." if no_acc else ""

    # Fig. 1: top-1 vs operations, bubble area ~ parameters
    if acc:
        rows = [{"model": r["model"], "gmacs": r["gmacs"], "top1": r["top1"], "params": r["params"]} for r in acc]
        best = max(rows, key=lambda r: r["top1"])
        cheap = min(rows, key=lambda r: r["gmacs"])
        figs["fig1_accuracy_vs_ops"] = {
            "rows": rows, "title": f"Top-1 ({kind}) vs operations; bubble area ~ parameters",
            "reading": f"{best['model']} is the most accurate ({best['top1']:.1f}% at {best['gmacs']:.2f} GMACs); "
                       f"{cheap['model']} the cheapest ({cheap['gmacs']:.2f} GMACs, {cheap['top1']:.1f}%).{dropped}{missing}"}
    else:
        figs["fig1_accuracy_vs_ops"] = {"unavailable": "no model has an accuracy (published or measured)"}

    ok = {m: {bs: r for bs, r in sorted(recs.items()) if r["status"] == "ok"} for m, recs in comp.measurements.items()}
    measured_any = any(ok.values())
    # Fig. 2: time per image vs batch size
    rows = [{"model": m, "batch_size": bs, "ms_per_image": r["ms_per_image"],
             "latency_median_ms": r["latency_ms"]["median"], "latency_p90_ms": r["latency_ms"]["p90"],
             "latency_p99_ms": r["latency_ms"]["p99"], "runs": r["runs"]}
            for m, recs in ok.items() for bs, r in recs.items()]
    if rows:
        gains = []
        for m, recs in ok.items():
            if len(recs) >= 2:
                lo, hi = min(recs), max(recs)
                gains.append((recs[lo]["ms_per_image"] / recs[hi]["ms_per_image"], m, lo, hi))
        reading = "Time per image at each batch size (median of the timed runs)."
        if gains:
            gains.sort()
            reading += (f" Batching from {gains[0][2]} to {gains[0][3]} images makes each image "
                        f"{gains[0][0]:.2f}x ({gains[0][1]}) to {gains[-1][0]:.2f}x ({gains[-1][1]}) faster here.")
        figs["fig2_time_vs_batch"] = {"rows": rows, "title": "Time per image vs batch size", "reading": reading}
    else:
        figs["fig2_time_vs_batch"] = {"unavailable": "nothing measured"}

    # Fig. 3: power vs batch size, where a meter exists
    rows = [{"model": m, "batch_size": bs, "avg_power_w": r["energy"]["avg_power_w"],
             "energy_per_image_j": r["energy"]["energy_per_image_j"]}
            for m, recs in ok.items() for bs, r in recs.items() if r.get("energy", {}).get("available")]
    if rows:
        ps = [r["avg_power_w"] for r in rows]
        figs["fig3_power_vs_batch"] = {
            "rows": rows, "title": "Average power vs batch size",
            "reading": f"Average power ranges {min(ps):.1f}-{max(ps):.1f} W over all models and batch sizes "
                       f"({rows[0]['model']} at batch {rows[0]['batch_size']}: {rows[0]['avg_power_w']:.1f} W)."}
    else:
        reason = next((r["energy"]["reason"] for recs in ok.values() for r in recs.values()
                       if r.get("energy") and not r["energy"].get("available")), "nothing measured")
        figs["fig3_power_vs_batch"] = {"unavailable": f"no energy meter: {reason}"}

    # Fig. 4: peak memory vs batch size
    rows = [{"model": m, "batch_size": bs, "peak_memory_mb": r["memory"]["peak_bytes"] / 2**20,
             "est_peak_memory_mb": _mb((r.get("analysis") or {}).get(
                 "forward_peak_bytes" if r.get("mode", "infer") == "infer" else "train_step_bytes"))}
            for m, recs in ok.items() for bs, r in recs.items() if r.get("memory", {}).get("peak_bytes") is not None]
    if rows:
        method = next(r["memory"].get("method") for recs in ok.values() for r in recs.values() if r.get("memory"))
        figs["fig4_memory_vs_batch"] = {"rows": rows, "title": "Peak memory above baseline vs batch size",
                                        "reading": f"Measured as {method}. Beside it in the CSV, cnnlab.analyze's estimate "
                                                   "(est_peak_memory_mb: the most activation bytes alive at once in "
                                                   "inference; saved activations + gradients in training)" +
                                                   _ratio_text(rows) + "."}
    else:
        figs["fig4_memory_vs_batch"] = {"unavailable": "no memory measured"}

    # Fig. 5: memory at the smallest batch vs parameters
    rows = [{"model": r["model"], "params": r["params"], "weights_mb": r["weights_mb"],
             "peak_memory_mb": r["peak_mb_smallest"], "batch_size": min(r["measured_batch_sizes"])}
            for r in comp.rows if r["peak_mb_smallest"] is not None]
    if len(rows) >= 2:
        fit = linear_fit([r["params"] / 1e6 for r in rows], [r["peak_memory_mb"] + r["weights_mb"] for r in rows])
        figs["fig5_memory_vs_params"] = {
            "rows": rows, "fit": fit, "title": "Weights + peak memory at the smallest batch vs parameters",
            "reading": f"Weights plus the measured peak grow with the parameter count at {fit['slope']:.2f} MB per "
                       f"million parameters + {fit['intercept']:.0f} MB (R² = {fit['r2']:.2f}, {fit['n']} models); "
                       "4 MB per million would be the fp32 weights alone."}
    else:
        figs["fig5_memory_vs_params"] = {"unavailable": "fewer than two models with a measured peak"}

    # Fig. 6: operations vs time, linear fit
    ref = _ref_batch(comp)
    rows = [{"model": r["model"], "batch_size": ref, "gmacs_batch": r["gmacs"] * ref,
             "latency_median_ms": ok[r["model"]][ref]["latency_ms"]["median"]}
            for r in comp.rows if ref is not None and ref in ok[r["model"]]]
    if len(rows) >= 2:
        fit = linear_fit([r["latency_median_ms"] for r in rows], [r["gmacs_batch"] for r in rows])
        figs["fig6_ops_vs_time"] = {
            "rows": rows, "fit": fit, "title": f"Operations vs time per batch of {ref}",
            "reading": f"At batch {ref}, operations = {fit['slope'] * 1000:.1f} GMAC/s x time "
                       f"{'+' if fit['intercept'] >= 0 else '-'} {abs(fit['intercept']):.2f} GMACs, R² = {fit['r2']:.3f} "
                       f"over {fit['n']} models: {'operations predict the time well' if fit['r2'] >= 0.9 else 'operations are a rough predictor of time only'}."}
    else:
        figs["fig6_ops_vs_time"] = {"unavailable": "fewer than two models measured at one batch size"}

    # Fig. 8: top-1 vs images/s at batch 1 and 16 (or the largest), Pareto front
    rows = []
    for r in acc:
        for bs in sorted({1, ref} - {None}):
            if bs in ok.get(r["model"], {}):
                rows.append({"model": r["model"], "batch_size": bs, "images_per_s": ok[r["model"]][bs]["images_per_s"],
                             "top1": r["top1"], "pareto": False})
    if rows:
        parts = []
        for bs in sorted({x["batch_size"] for x in rows}):
            pts = [(x["model"], x["images_per_s"], x["top1"]) for x in rows if x["batch_size"] == bs]
            front = pareto_front(pts)
            for x in rows:
                if x["batch_size"] == bs and x["model"] in front:
                    x["pareto"] = True
            parts.append(f"at batch {bs} the Pareto front (fastest first) is {', '.join(front)}")
        figs["fig8_accuracy_vs_throughput"] = {"rows": rows, "title": f"Top-1 ({kind}) vs images per second",
                                               "reading": "; ".join(parts)[:1].upper() + "; ".join(parts)[1:] + "." + dropped}
    else:
        figs["fig8_accuracy_vs_throughput"] = {"unavailable": "no model has both an accuracy and a measurement"}

    # Fig. 9: accuracy density
    rows = [{"model": r["model"], "top1": r["top1"], "params_m": r["params"] / 1e6,
             "top1_per_m_params": r["accuracy_density"]} for r in acc]
    if rows:
        best = max(rows, key=lambda r: r["top1_per_m_params"])
        worst = min(rows, key=lambda r: r["top1_per_m_params"])
        figs["fig9_accuracy_density"] = {
            "rows": rows, "title": "Accuracy density: top-1 per million parameters",
            "reading": f"{best['model']} uses its parameters best ({best['top1_per_m_params']:.2f} %/M), "
                       f"{worst['model']} worst ({worst['top1_per_m_params']:.2f} %/M).{dropped}"}
    else:
        figs["fig9_accuracy_density"] = {"unavailable": "no model has an accuracy"}
    return figs


def _plot(name: str, fig: dict, path: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("the figures need matplotlib: pip install 'cnnlab[compare]' (or pass --no-figures)") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = fig["rows"]
    f, ax = plt.subplots(figsize=(9, 5.5))
    models = list(dict.fromkeys(r["model"] for r in rows))
    if name == "fig1_accuracy_vs_ops":
        biggest = max(r["params"] for r in rows)
        ax.scatter([r["gmacs"] for r in rows], [r["top1"] for r in rows],  # area ~ parameters
                   s=[max(10.0, 2000.0 * r["params"] / biggest) for r in rows], alpha=0.45, edgecolors="k")
        for r in rows:
            ax.annotate(r["model"], (r["gmacs"], r["top1"]), fontsize=7, ha="center", va="bottom")
        ax.set_xlabel("operations per image [GMACs] (1 MAC = 2 FLOPs)")
        ax.set_ylabel("top-1 accuracy [%]")
    elif name in ("fig2_time_vs_batch", "fig3_power_vs_batch", "fig4_memory_vs_batch"):
        key, label = {"fig2_time_vs_batch": ("ms_per_image", "time per image [ms]"),
                      "fig3_power_vs_batch": ("avg_power_w", "average power [W]"),
                      "fig4_memory_vs_batch": ("peak_memory_mb", "peak memory above baseline [MiB]")}[name]
        for i, m in enumerate(models):
            pts = [(r["batch_size"], r[key]) for r in rows if r["model"] == m]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^vDP*X"[i % 8], label=m,
                    color=plt.cm.tab20(i % 20), linestyle="-" if i < 10 else "--")
        ax.set_xscale("log", base=2)
        if name != "fig3_power_vs_batch":
            ax.set_yscale("log")
        sizes = sorted({r["batch_size"] for r in rows})
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    elif name == "fig5_memory_vs_params":
        xs = [r["params"] / 1e6 for r in rows]
        ys = [r["peak_memory_mb"] + r["weights_mb"] for r in rows]
        ax.scatter(xs, ys)
        for r, x, y in zip(rows, xs, ys):
            ax.annotate(r["model"], (x, y), fontsize=7)
        fit = fig["fit"]
        ax.plot([min(xs), max(xs)], [fit["slope"] * x + fit["intercept"] for x in (min(xs), max(xs))], "k--",
                label=f"fit, R² = {fit['r2']:.2f}")
        ax.set_xlabel("parameters [M]")
        ax.set_ylabel("weights + peak memory [MiB]")
        ax.legend()
    elif name == "fig6_ops_vs_time":
        xs = [r["latency_median_ms"] for r in rows]
        ys = [r["gmacs_batch"] for r in rows]
        ax.scatter(xs, ys)
        for r, x, y in zip(rows, xs, ys):
            ax.annotate(r["model"], (x, y), fontsize=7)
        fit = fig["fit"]
        ax.plot([0, max(xs)], [fit["intercept"], fit["slope"] * max(xs) + fit["intercept"]], "k--",
                label=f"linear fit, R² = {fit['r2']:.3f}")
        ax.set_xlabel(f"time per batch of {rows[0]['batch_size']} [ms] (median)")
        ax.set_ylabel("operations per batch [GMACs]")
        ax.legend()
    elif name == "fig8_accuracy_vs_throughput":
        batches = sorted({r["batch_size"] for r in rows})
        for m in models:  # a thin line from each model's batch-1 point to its larger-batch point
            pts = sorted((r for r in rows if r["model"] == m), key=lambda r: r["batch_size"])
            ax.plot([r["images_per_s"] for r in pts], [r["top1"] for r in pts], color="0.7", linewidth=0.8)
        for bs, marker in zip(batches, "os^"):
            pts = [r for r in rows if r["batch_size"] == bs]
            ax.scatter([r["images_per_s"] for r in pts], [r["top1"] for r in pts], marker=marker, label=f"batch {bs}",
                       zorder=3)
            front = sorted((r for r in pts if r["pareto"]), key=lambda r: r["images_per_s"])
            ax.plot([r["images_per_s"] for r in front], [r["top1"] for r in front], "--", alpha=0.6,
                    label=f"Pareto front, batch {bs}")
        for r in rows:
            if r["batch_size"] == batches[-1]:  # one label per model
                ax.annotate(r["model"], (r["images_per_s"], r["top1"]), fontsize=7, xytext=(4, -3),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("images per second (at the median latency)")
        ax.set_ylabel("top-1 accuracy [%]")
        ax.legend()
    elif name == "fig9_accuracy_density":
        order = sorted(rows, key=lambda r: r["top1_per_m_params"])
        ax.barh([r["model"] for r in order], [r["top1_per_m_params"] for r in order])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("top-1 [%] per million parameters")
    ax.set_title(fig["title"], fontsize=10)
    ax.grid(alpha=0.3, which="both")
    f.tight_layout()
    f.savefig(path + ".png", dpi=110)
    f.savefig(path + ".svg")
    plt.close(f)


def make_figures(comp: Comparison, out: str) -> dict[str, dict]:
    """Write every figure that has data (PNG, SVG, CSV); returns figure_data with paths."""
    figs = figure_data(comp)
    for name, fig in figs.items():
        if "rows" not in fig:
            continue
        base = os.path.join(out, name)
        with open(base + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fig["rows"][0]), lineterminator="\n")
            w.writeheader()
            w.writerows(fig["rows"])
        _plot(name, fig, base)
        fig.update(png=base + ".png", svg=base + ".svg", csv=base + ".csv")
    return figs


def write_report(comp: Comparison, out: str, settings: dict) -> str:
    """``report.md``: settings, environment, the table and every figure with its reading."""
    figs = comp.figures or figure_data(comp)
    env = comp.env or {}
    lines = ["# cnnlab compare", ""]
    lines.append("Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".")
    if settings.get("clock") == "cpu":
        lines.append("Times are the CPU time of the measuring process per batch (median of the timed runs), "
                     "not the wall clock: with one thread, what an idle core needs.")
    if env:
        lines.append(f"Machine: {env.get('cpu')} ({env.get('cpu_count')} cores, {env.get('threads')} threads), "
                     f"{env.get('gpu', 'no GPU used')}; torch {env.get('torch')}, cnnlab {env.get('cnnlab')}.")
    lines += ["", "Conventions: 1 multiply-add = 1 MAC = 2 FLOPs; GMACs count conv + linear layers per image "
              "(cnnlab.analyze). Latency is the median of the timed runs; img/s = batch / median. "
              "Accuracy: measured where a results file gave it, else published (source in table.csv); "
              "'—' is unavailable, never estimated.", ""]
    lines.append(comp.table(markdown=True))
    for note in comp.notes:
        lines.append(f"Note: {note}\n")
    for name, fig in figs.items():
        lines.append(f"## {name.replace('_', ' ')}\n")
        if "rows" not in fig:
            lines.append(f"Unavailable: {fig['unavailable']}.\n")
            continue
        if "png" in fig:
            lines.append(f"![{fig['title']}]({name}.png)\n")
        lines.append(fig["reading"] + f" Data: `{name}.csv`.\n")
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
