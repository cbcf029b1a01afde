"""Bench results as a table (terminal, Markdown) and as CSV.

The CSV uses the column names of timm's ``benchmark.py`` where a column means the
same thing, so a file can be read beside timm's published results:
``model``, ``{mode}_samples_per_sec`` (all timed images / all timed seconds, as timm),
``{mode}_step_time`` (mean milliseconds per batch, as timm), ``{mode}_batch_size``,
``{mode}_img_size``, ``param_count`` (millions) and ``{mode}_gmacs`` (GMACs per image),
with ``{mode}`` = ``infer`` or ``train``. cnnlab's own columns follow: the median and
percentiles, memory, energy and the settings. ``est_peak_memory_mb`` is cnnlab.analyze's
estimate beside the measured peak: in infer mode the most activation bytes alive at once
in the forward pass; in train mode autograd's saved activations + the gradients (what a
step allocates beyond the weights and momentum, which stay between steps).
"""
from __future__ import annotations

import csv
import io

__all__ = ["csv_rows", "to_csv", "table_rows", "format_table"]

_OWN = ("status", "device", "precision", "channels_last", "compile", "threads", "runs", "stable",
        "latency_median_ms", "latency_p90_ms", "latency_p99_ms", "ms_per_image", "images_per_s_median",
        "peak_memory_mb", "est_peak_memory_mb", "weights_mb", "activations_mb", "energy_per_image_j", "avg_power_w", "energy_note",
        "error")


def _mb(n):
    return None if n is None else round(n / 2**20, 2)


def csv_rows(records) -> list[dict]:
    rows = []
    for r in records:
        if r.get("type") != "result":
            continue
        m = r["mode"]
        a = r.get("analysis") or {}
        lat = r.get("latency_ms") or {}
        mem = r.get("memory") or {}
        en = r.get("energy") or {}
        ok = r.get("status") == "ok"
        row = {
            "model": r["model"],
            f"{m}_samples_per_sec": round(r["images_per_s_mean"], 2) if ok else None,
            f"{m}_step_time": round(lat["mean"], 3) if ok else None,
            f"{m}_batch_size": r["batch_size"],
            f"{m}_img_size": r["input_size"][-1],
            "param_count": round(a["params"] / 1e6, 2) if "params" in a else None,
            f"{m}_gmacs": round(a["macs"] / 1e9, 2) if "macs" in a else None,
            "status": r["status"], "device": r["device"], "precision": r["precision"],
            "channels_last": r["channels_last"], "compile": r["compile"], "threads": r.get("threads"),
            "runs": r.get("runs"), "stable": r.get("stable"),
            "latency_median_ms": round(lat["median"], 4) if ok else None,
            "latency_p90_ms": round(lat["p90"], 4) if ok else None,
            "latency_p99_ms": round(lat["p99"], 4) if ok else None,
            "ms_per_image": round(r["ms_per_image"], 4) if ok else None,
            "images_per_s_median": round(r["images_per_s"], 2) if ok else None,
            "peak_memory_mb": _mb(mem.get("peak_bytes")),
            "est_peak_memory_mb": _mb(a.get("forward_peak_bytes") if m == "infer" else a.get("train_step_bytes")),
            "weights_mb": _mb(a.get("weights_bytes")),
            "activations_mb": _mb(a.get("activations_bytes")),
            "energy_per_image_j": en.get("energy_per_image_j"),
            "avg_power_w": en.get("avg_power_w"),
            "energy_note": en.get("source") if en.get("available") else en.get("reason"),
            "error": r.get("error"),
        }
        rows.append(row)
    return rows


def to_csv(records, path: str | None = None) -> str:
    """CSV text of the result records (written to ``path`` if given)."""
    rows = csv_rows(records)
    fields: list[str] = []
    for row in rows:  # timm's columns first, in the order of the first row of each mode
        for k in row:
            if k not in fields and k not in _OWN:
                fields.append(k)
    fields += list(_OWN)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    text = buf.getvalue()
    if path:
        with open(path, "w", newline="") as f:
            f.write(text)
    return text


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table_rows(records) -> list[tuple[str, ...]]:
    header = ("model", "batch", "median ms", "p90 ms", "p99 ms", "runs", "img/s", "ms/img", "peak MB",
              "est. MB", "J/img", "status")
    rows = [header]
    for r in records:
        if r.get("type") != "result":
            continue
        ok = r["status"] == "ok"
        lat = r.get("latency_ms") or {}
        en = r.get("energy") or {}
        mem = r.get("memory") or {}
        a = r.get("analysis") or {}
        status = r["status"] + ("" if ok or not r.get("error") else f": {r['error'][:60]}")
        if ok and not r.get("stable", True):
            status += " (median not stable)"
        rows.append((r["model"], str(r["batch_size"]),
                     _fmt(lat.get("median"), ".2f"), _fmt(lat.get("p90"), ".2f"), _fmt(lat.get("p99"), ".2f"),
                     _fmt(r.get("runs"), "d"), _fmt(r.get("images_per_s"), ".1f"), _fmt(r.get("ms_per_image"), ".3f"),
                     _fmt(_mb(mem.get("peak_bytes")), ".1f"),
                     _fmt(_mb(a.get("forward_peak_bytes") if r["mode"] == "infer" else a.get("train_step_bytes")), ".1f"),
                     _fmt(en.get("energy_per_image_j"), ".3f") if en.get("available") else "n/a",
                     status))
    return rows


def format_table(rows: list[tuple[str, ...]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    left = {0, len(rows[0]) - 1}
    out = []
    for k, r in enumerate(rows):
        out.append("  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"
