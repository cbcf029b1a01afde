"""The result of an analysis, and its renderings: terminal table, JSON, CSV, Markdown."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import torch

from cnnlab.anatomy.ops import KINDS, RF
from cnnlab.anatomy.trace import Row, Trace, per_image

__all__ = ["Anatomy", "human"]

_KIND_LABELS = {"conv": "conv", "linear": "linear", "norm": "norm", "act": "activation", "pool": "pooling",
                "eltwise": "elementwise"}


def human(n: float, unit: str = "") -> str:
    """3_211_264 -> '3.21M'; bytes with unit='B' -> '12.3 MB' (powers of 1000, like the lecture)."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{' ' if unit else ''}{suffix}{unit}"
    return f"{n:g}{' ' + unit if unit else ''}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _volume(shape: Any) -> str:
    """Output volume per image, lecture style: H x W x C for images, else the dims."""
    if not shape:
        return ""
    if isinstance(shape[0], list):
        return " + ".join(_volume(s) for s in shape)
    dims = shape[1:]
    if len(dims) == 3:
        c, h, w = dims
        return f"{h}x{w}x{c}"
    return "x".join(str(d) for d in dims) or "1"


def _rf_fields(rf: RF | None) -> dict:
    if rf is None:
        return {"receptive_field": None, "rf_jump": None, "rf_start": None}
    return {"receptive_field": rf.size(), "rf_jump": rf.jump(), "rf_start": rf.start()}


def _rf_text(row: dict) -> str:
    rf = row.get("receptive_field")
    if rf is None:
        return ""
    size = "x".join(map(str, rf)) if isinstance(rf, list) else str(rf)
    jump = row.get("rf_jump")
    if jump is None:
        return f"{size} (all)"
    jump = "x".join(map(str, jump)) if isinstance(jump, list) else str(jump)
    return f"{size} /{jump}"


class Anatomy:
    """A model taken apart: one row per module call or functional op, and totals.

    Per-layer figures are per image (``output_shape`` keeps the batch dimension);
    ``totals`` has per-image figures and, where it says so, per-batch ones.
    """

    def __init__(self, model: str, input_shape: list[int], layers: list[dict], totals: dict,
                 conventions: dict):
        self.model = model
        self.input_shape = input_shape
        self.layers = layers
        self.totals = totals
        self.conventions = conventions

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_trace(cls, label: str, trace: Trace, *, batch_size: int, dtype: torch.dtype, count: tuple,
                   mode: str, params_total: int, trainable_total: int, optimizer: str, optimizer_states: int,
                   train_trace: Trace | str | None, measured: dict | None) -> Anatomy:
        n = batch_size
        rows = trace.rows
        itemsize = torch.empty((), dtype=dtype).element_size()
        layers = [cls._row_dict(r, rows, n, count) for r in rows]
        top = [r for r in rows if r.parent is None]
        ops_batch = {k: sum(r.ops.get(k, 0) for r in top) for k in KINDS}
        macs_batch = sum(ops_batch[k] for k in count)
        mem_batch = sum(r.memory for r in top)
        mem_bytes_batch = sum(r.memory_bytes for r in top)
        input_values = math.prod(trace.input_shape[1:])
        input_bytes = input_values * n * itemsize
        params_in_rows = sum(r.params for r in top)
        last_spatial = next((r.rf for r in reversed(rows) if r.rf is not None and r.rf.hw is not None), None)
        params_bytes = params_total * itemsize
        grads_bytes = trainable_total * itemsize
        optimizer_bytes = optimizer_states * trainable_total * itemsize
        training: dict[str, Any] = {"batch_size": n, "optimizer": optimizer, "params_bytes": params_bytes,
                                    "grads_bytes": grads_bytes, "optimizer_state_bytes": optimizer_bytes}
        if isinstance(train_trace, Trace):
            saved = train_trace.saved_bytes or 0
            training["saved_activations_bytes"] = saved
            training["forward_peak_bytes"] = train_trace.peak_bytes
            training["total_bytes"] = saved + params_bytes + grads_bytes + optimizer_bytes
        else:
            training["saved_activations_bytes"] = None
            training["total_bytes"] = None
            if train_trace:
                training["note"] = train_trace
        totals = {
            "params": params_total,
            "trainable_params": trainable_total,
            "params_bytes": params_bytes,
            "params_not_in_forward": params_total - params_in_rows,
            "macs": per_image(macs_batch, n),
            "flops": 2 * per_image(macs_batch, n),
            "macs_batch": macs_batch,
            "ops": {k: per_image(v, n) for k, v in ops_batch.items()},
            "input_values": input_values,
            "forward_values": per_image(mem_batch, n),
            "forward_values_with_input": per_image(mem_batch, n) + input_values,
            "forward_bytes_batch": mem_bytes_batch + input_bytes,
            "forward_peak_bytes_batch": trace.peak_bytes,
            "training": training,
            **_rf_fields(last_spatial),
            "output_receptive_field": trace.output_rf.size() if trace.output_rf is not None else None,
            "coverage": trace.coverage,
        }
        if measured is not None:
            totals["measured"] = measured
        conventions = {
            "macs": f"multiply-accumulates of {' + '.join(count)} ops; 1 MAC = 2 FLOPs; per image",
            "ops": "conv/linear in MACs; norm/act/eltwise one op per output value; pool one op per value read",
            "activations": "values in a layer's output, per image",
            "memory": "values a layer writes, per image (views and in-place ops write none); "
                      f"bytes at {_dtype_name(dtype)} ({itemsize} B/value)",
            "params": "counted at a module's first call (shared modules once)",
            "receptive_field": "input pixels one output value sees (size), and the distance in input "
                               "pixels between neighbouring outputs (jump), through branches and merges",
            "training": "autograd's saved tensors in a train-mode pass + params + grads + optimizer state, "
                        "per batch, in bytes",
            "counted": list(count),
            "mode": mode,
            "dtype": _dtype_name(dtype),
            "batch_size": n,
        }
        return cls(label, trace.input_shape, layers, totals, conventions)

    @staticmethod
    def _row_dict(r: Row, rows: list[Row], n: int, count: tuple) -> dict:
        shape = r.output_shape
        first = shape[0] if shape and isinstance(shape[0], list) else shape
        activations = per_image(math.prod(first), n) if first else 0
        macs = sum(r.ops.get(k, 0) for k in count)
        d = {
            "name": r.name,
            "type": r.type,
            "kind": r.kind,
            "depth": r.depth,
            "parent": rows[r.parent].name if r.parent is not None else None,
            "leaf": not r.children,
            "output_shape": shape,
            "activations": activations,
            "memory": per_image(r.memory, n),
            "memory_bytes": per_image(r.memory_bytes, n),
            "params": r.params,
            "macs": per_image(macs, n),
            "flops": 2 * per_image(macs, n),
            "ops": {k: per_image(v, n) for k, v in r.ops.items() if v},
            **_rf_fields(r.rf),
        }
        if r.shared_with:
            d["shared_with"] = r.shared_with
        return d

    # -- views ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"model": self.model, "input_shape": list(self.input_shape), "layers": self.layers,
                "totals": self.totals, "conventions": self.conventions}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def rows(self, depth: int | None = None) -> list[dict]:
        """Rows down to ``depth`` (containers at that depth folded with their sums)."""
        return [r for r in self.layers if depth is None or r["depth"] <= depth]

    def leaves(self) -> list[dict]:
        return [r for r in self.layers if r["leaf"]]

    def __getitem__(self, name: str) -> dict:
        for r in self.layers:
            if r["name"] == name:
                return r
        raise KeyError(f"no layer named {name!r} in the analysis of {self.model}")

    def to_csv(self, depth: int | None = None) -> str:
        buf = io.StringIO()
        fields = ["name", "type", "kind", "depth", "output_shape", "activations", "memory", "memory_bytes",
                  "params", "macs", "flops", *[f"ops_{k}" for k in KINDS], "receptive_field", "rf_jump",
                  "shared_with"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in self.rows(depth):
            row = {k: r.get(k) for k in fields if not k.startswith("ops_")}
            row["output_shape"] = json.dumps(r["output_shape"]).replace(" ", "") if r["output_shape"] else ""
            for key in ("receptive_field", "rf_jump"):
                if isinstance(row[key], list):
                    row[key] = "x".join(map(str, row[key]))
            row.update({f"ops_{k}": r["ops"].get(k, 0) for k in KINDS})
            writer.writerow(row)
        return buf.getvalue()

    def _table_rows(self, depth: int | None, flops: bool, indent: str) -> list[tuple[str, ...]]:
        unit = "FLOPs" if flops else "MACs"
        out = [("Layer", "Type", "Output (HxWxC)", "Memory", "Params", unit, "RF /jump")]
        base = min((r["depth"] for r in self.layers), default=1)
        for r in self.rows(depth):
            note = " (shared)" if r.get("shared_with") else ""
            out.append((
                indent * (r["depth"] - base) + r["name"],
                r["type"] + note,
                _volume(r["output_shape"]),
                f"{r['memory']:,}",
                f"{r['params']:,}",
                f"{r['flops' if flops else 'macs']:,}",
                _rf_text(r),
            ))
        return out

    def table(self, depth: int | None = None, flops: bool = False) -> str:
        """The lecture-style table with totals, the memory/params breakdown and coverage."""
        rows = self._table_rows(depth, flops, "  ")
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        right = {3, 4, 5}
        lines = []
        for k, r in enumerate(rows):
            cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append("")
        lines.extend(self.summary_lines(flops))
        return "\n".join(lines)

    def to_markdown(self, depth: int | None = None, flops: bool = False) -> str:
        rows = self._table_rows(depth, flops, "&nbsp;&nbsp;")
        lines = [f"### {self.model}: input {'x'.join(map(str, self.input_shape))}", ""]
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|" + "|".join(["---", "---", "---", "---:", "---:", "---:", "---"]) + "|")
        for r in rows[1:]:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        lines.append("")
        lines.extend(f"- {line}" for line in self.summary_lines(flops))
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        t = self.totals
        return (f"Anatomy({self.model!r}, input={self.input_shape}, layers={len(self.layers)}, "
                f"params={t['params']:,}, macs={t['macs']:,})")

    # -- the story the numbers tell ------------------------------------------
    def breakdown(self) -> dict:
        """Where memory and parameters sit: the first quarter of the layers (in forward
        order) against the last, per layer type, and the largest single layers."""
        leaves = [r for r in self.leaves() if r["memory"] or r["params"]]
        total_mem = sum(r["memory"] for r in leaves) or 1
        total_params = sum(r["params"] for r in leaves) or 1
        q = max(1, math.ceil(len(leaves) / 4))
        by_type_mem: dict[str, float] = {}
        by_type_params: dict[str, int] = {}
        for r in leaves:
            by_type_mem[r["type"]] = by_type_mem.get(r["type"], 0) + r["memory"]
            by_type_params[r["type"]] = by_type_params.get(r["type"], 0) + r["params"]
        top_mem = max(leaves, key=lambda r: r["memory"], default=None)
        top_params = max(leaves, key=lambda r: r["params"], default=None)
        return {
            "layers": len(leaves),
            "memory_first_quarter_pct": 100 * sum(r["memory"] for r in leaves[:q]) / total_mem,
            "memory_last_quarter_pct": 100 * sum(r["memory"] for r in leaves[-q:]) / total_mem,
            "params_first_quarter_pct": 100 * sum(r["params"] for r in leaves[:q]) / total_params,
            "params_last_quarter_pct": 100 * sum(r["params"] for r in leaves[-q:]) / total_params,
            "memory_by_type_pct": {k: 100 * v / total_mem for k, v in by_type_mem.items() if v},
            "params_by_type_pct": {k: 100 * v / total_params for k, v in by_type_params.items() if v},
            "largest_memory": top_mem and {"name": top_mem["name"], "values": top_mem["memory"]},
            "largest_params": top_params and {"name": top_params["name"], "params": top_params["params"]},
            "first_quarter": [leaves[0]["name"], leaves[q - 1]["name"]] if leaves else [],
            "last_quarter": [leaves[-q]["name"], leaves[-1]["name"]] if leaves else [],
        }

    def summary_lines(self, flops: bool = False) -> list[str]:
        t, c = self.totals, self.conventions
        n = c["batch_size"]
        dtype = c["dtype"]
        lines = [f"{self.model}: input {'x'.join(map(str, self.input_shape))} ({dtype}, {c['mode']} mode)"]
        lines.append(f"Params: {t['params']:,} ({human(t['params'])}; trainable {t['trainable_params']:,}), "
                     f"{human(t['params_bytes'], 'B')}")
        if t["params_not_in_forward"]:
            lines.append(f"  of which {t['params_not_in_forward']:,} are not used by this forward pass "
                         "(e.g. auxiliary heads in eval mode)")
        what = " + ".join(c["counted"])
        if flops:
            lines.append(f"FLOPs per image: {t['flops']:,} ({human(t['flops'])}) = 2 x MACs of {what} ops")
        else:
            lines.append(f"MACs per image: {t['macs']:,} ({human(t['macs'])}) of {what} ops"
                         + (f"; batch of {n}: {t['macs_batch']:,}" if n > 1 else ""))
        others = ", ".join(f"{_KIND_LABELS[k]} {human(v)}" for k, v in t["ops"].items() if v and k not in c["counted"])
        if others:
            lines.append(f"Other ops per image (listed separately, not in the MACs): {others}")
        itemsize = t["params_bytes"] / t["params"] if t["params"] else 4
        lines.append(
            f"Forward memory per image: {t['forward_values_with_input']:,} values incl. the input's "
            f"{t['input_values']:,} ({human(t['forward_values_with_input'] * itemsize, 'B')}); "
            f"batch of {n}: {human(t['forward_bytes_batch'], 'B')} if every output were kept; live peak of "
            f"{'an inference' if c['mode'] == 'eval' else 'this'} pass {human(t['forward_peak_bytes_batch'], 'B')} "
            "(input excluded)")
        tr = t["training"]
        if tr["total_bytes"] is not None:
            lines.append(
                f"Training estimate, batch {n}, {tr['optimizer']}: activations kept for backward "
                f"{human(tr['saved_activations_bytes'], 'B')} + params {human(tr['params_bytes'], 'B')} + grads "
                f"{human(tr['grads_bytes'], 'B')} + optimizer state {human(tr['optimizer_state_bytes'], 'B')} = "
                f"{human(tr['total_bytes'], 'B')}")
        elif tr.get("note"):
            lines.append(f"Training estimate unavailable: {tr['note']}")
        if "measured" in t:
            m = t["measured"]
            lines.append(f"Measured peak ({m['device']}, {m['method']}): forward {human(m['forward_peak_bytes'], 'B')}, "
                         f"forward+backward {human(m['train_step_peak_bytes'], 'B')}")
        if t["receptive_field"] is not None:
            lines.append(f"Receptive field of the last spatial layer: {_rf_text(t)} px")
        b = self.breakdown()
        if b["layers"] >= 4:
            mem_type = max(b["memory_by_type_pct"].items(), key=lambda kv: kv[1], default=("", 0))
            par_type = max(b["params_by_type_pct"].items(), key=lambda kv: kv[1], default=("", 0))
            def where(first: float, last: float) -> str:
                return "mostly in early layers" if first > 50 else "mostly in late layers" if last > 50 else "spread out"

            lines.append(
                f"Memory is {where(b['memory_first_quarter_pct'], b['memory_last_quarter_pct'])}: "
                f"{b['memory_first_quarter_pct']:.0f}% in the first quarter of the layers "
                f"({b['first_quarter'][0]} .. {b['first_quarter'][1]}), {b['memory_last_quarter_pct']:.0f}% in the last; "
                f"{mem_type[0]} layers hold {mem_type[1]:.0f}%; largest: {b['largest_memory']['name']} "
                f"({b['largest_memory']['values']:,} values)")
            lines.append(
                f"Params are {where(b['params_first_quarter_pct'], b['params_last_quarter_pct'])}: "
                f"{b['params_last_quarter_pct']:.0f}% in the last quarter of the layers "
                f"({b['last_quarter'][0]} .. {b['last_quarter'][1]}), {b['params_first_quarter_pct']:.0f}% in the first; "
                f"{par_type[0]} layers hold {par_type[1]:.0f}%; largest: {b['largest_params']['name']} "
                f"({b['largest_params']['params']:,})")
        lines.append(coverage_line(t["coverage"]))
        return lines


def coverage_line(cov: dict) -> str:
    counted = ", ".join(f"{k} {v}" for k, v in cov["by_kind"].items() if v)
    unknown = cov["unknown"]
    text = (f"Coverage: {cov['ops']:,} aten ops seen: {cov['counted']:,} counted ({counted or 'none'}), "
            f"{cov['free']:,} free (views, copies, concatenation, creation)")
    if unknown:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(unknown.items()))
        return text + f"; NOT COUNTED (unknown to the counter): {listed}"
    return text + "; no unknown ops"
