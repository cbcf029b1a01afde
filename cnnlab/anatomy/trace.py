"""Tracing a model on the meta device: every module call and every aten op, no data.

A :class:`TorchDispatchMode` sees every aten op the forward pass runs, whether it
comes from a module, an ``F.*`` function, a tensor method or an operator, so
functional calls are counted like modules. Forward pre/post hooks on every module
say which module call is running, so a module called twice gets two rows and its
parameters are counted once. Ops run directly in a container's ``forward`` (the
``out + identity`` of a residual block, the ``torch.cat`` of an inception module)
get rows of their own under that container, so a container's totals are always
the sum of its children's rows.
"""
from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

from cnnlab.anatomy.ops import KINDS, RF, is_view_or_inplace, op_cost, op_name, rf_for_op, rf_input

__all__ = ["Row", "Trace", "trace_model"]


@dataclass
class Row:
    """One module call or one functional op, with counts for the whole batch."""

    name: str
    type: str
    kind: str  # "module" or "function"
    depth: int
    parent: int | None
    leaf: bool
    output_shape: list | None = None
    output_dtype: torch.dtype | None = None
    params: int = 0
    trainable_params: int = 0
    shared_with: str | None = None
    memory: int = 0  # values newly written by this row (views and in-place ops write none)
    memory_bytes: int = 0
    ops: Counter = field(default_factory=Counter)  # kind -> count over the batch
    rf: RF | None = None
    module_name: str | None = None  # the module's own (first) name, for module rows
    children: list[int] = field(default_factory=list)


@dataclass
class Trace:
    rows: list[Row]
    input_shape: list[int]
    input_dtype: torch.dtype
    output_rf: RF | None
    coverage: dict[str, Any]
    saved_bytes: int | None  # autograd's saved tensors (activations kept for backward)
    peak_bytes: int  # the most bytes the pass's own tensors held at one time (the input excluded)


class _Recorder(TorchDispatchMode):
    def __init__(self, rows: list[Row], stack: list[int], counter: Counter):
        super().__init__()
        self.rows = rows
        self.stack = stack
        self.fields = WeakTensorKeyDictionary()
        self.seen = counter
        self.unknown: Counter = Counter()
        self.fn_names: Counter = Counter()
        self.cache: dict = {}
        self.live = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def _track(self, out: Any) -> None:
        """Count a fresh output's storage as live until the last tensor on it is gone."""
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.device.type == "meta":
                storage = t.untyped_storage()
                nbytes = storage.nbytes()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, nbytes)

    def _row_for_op(self, name: str) -> Row:
        top = self.rows[self.stack[-1]] if self.stack else None
        if top is not None and top.leaf:
            return top
        parent = self.stack[-1] if self.stack else None
        prefix = f"{top.name}." if top is not None else ""
        base = prefix + name
        self.fn_names[base] += 1
        label = base if self.fn_names[base] == 1 else f"{base}#{self.fn_names[base]}"
        row = Row(name=label, type=name, kind="function", depth=(top.depth + 1) if top else 1,
                  parent=parent, leaf=True)
        self.rows.append(row)
        if parent is not None:
            self.rows[parent].children.append(len(self.rows) - 1)
        return row

    def _run(self, func, args, kwargs, flat_args, spec):
        """``func(*args, **kwargs)``, reusing the output metadata of an identical earlier call.

        Many meta kernels are Python decompositions (batch norm's takes milliseconds); a
        deep network repeats the same few shapes, so a kernel runs once per distinct call.
        Only ops on meta tensors that return fresh tensors are reused; views run as usual.
        """
        key = _call_key(func, flat_args, spec)
        if key is None:
            return func(*args, **kwargs)
        hit = self.cache.get(key)
        if hit is not None:
            if hit is _INPLACE:
                return args[0]
            shapes, as_tuple = hit
            outs = [torch.empty_strided(shape, stride, dtype=dtype, device="meta") for shape, stride, dtype in shapes]
            return tuple(outs) if as_tuple else outs[0]
        out = func(*args, **kwargs)
        if _is_plain_inplace(func) and out is args[0]:
            self.cache[key] = _INPLACE
        elif not is_view_or_inplace(func) and not isinstance(out, list):
            outs = out if isinstance(out, tuple) else [out]
            if all(isinstance(o, torch.Tensor) and o.device.type == "meta" for o in outs):
                self.cache[key] = ([(tuple(o.shape), o.stride(), o.dtype) for o in outs], isinstance(out, tuple))
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat_args, spec = tree_flatten((args, kwargs))
        out = self._run(func, args, kwargs, flat_args, spec)
        name = op_name(func)
        inputs = [(t, self.fields[t]) for t in flat_args if isinstance(t, torch.Tensor) and t in self.fields]
        kind, count = op_cost(func, args, out)
        aliasing = is_view_or_inplace(func)
        if not aliasing:
            self._track(out)
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        self.seen[kind] += 1
        if kind == "unknown":
            self.unknown[str(func)] += 1
        rf = rf_for_op(func, args, out, inputs) if inputs and isinstance(first, torch.Tensor) else None
        if rf is not None:
            self.fields[first] = rf
        # Views, in-place ops and ops on parameters alone (a weight transpose) get no row of their own.
        if count or kind == "unknown" or (not aliasing and inputs):
            row = self._row_for_op(name)
            if count:
                row.ops[kind] += count
            if not aliasing and isinstance(first, torch.Tensor):
                row.memory += first.numel()
                row.memory_bytes += first.numel() * first.element_size()
            if row.kind == "function":
                row.output_shape = list(first.shape) if isinstance(first, torch.Tensor) else None
                row.output_dtype = first.dtype if isinstance(first, torch.Tensor) else None
                row.rf = rf
        return out


_INPLACE = object()
_SIMPLE = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)


def _call_key(func, flat_args: list, spec) -> tuple | None:
    """A hashable description of an op call on meta tensors, or None where there is none."""
    parts: list = [func, spec]
    for a in flat_args:
        if isinstance(a, torch.Tensor):
            if a.device.type != "meta":
                return None
            parts.append((tuple(a.shape), a.stride(), a.dtype))
        elif isinstance(a, _SIMPLE):
            parts.append((type(a), a))
        else:
            return None
    return tuple(parts)


def _is_plain_inplace(func) -> bool:
    """``relu_``, ``add_`` and the like: they write into their first argument and return it."""
    name = op_name(func)
    returns = func._schema.returns
    return (name.endswith("_") and len(returns) == 1 and returns[0].alias_info is not None
            and returns[0].alias_info.is_write and func._overloadname != "out" and name not in ("resize_", "set_"))


def _first_tensor(out: Any) -> torch.Tensor | None:
    flat, _ = tree_flatten(out)
    for t in flat:
        if isinstance(t, torch.Tensor):
            return t
    return None


def _shape_of(out: Any) -> list | None:
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, (tuple, list)):
        shapes = [_shape_of(o) for o in out]
        shapes = [s for s in shapes if s is not None]
        if not shapes:
            return None
        return shapes[0] if len(shapes) == 1 else shapes
    return None


def trace_model(model: nn.Module, call, x: torch.Tensor) -> Trace:
    """Run ``call(x)`` (which calls ``model``) on meta tensors, recording rows.

    ``model`` must be the module whose submodules run (its parameters may be replaced
    by ``call``, e.g. through ``torch.func.functional_call``).
    """
    rows: list[Row] = []
    stack: list[int] = []
    names = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    calls: Counter = Counter()
    first_call: dict[int, str] = {}
    seen_ops: Counter = Counter()
    recorder = _Recorder(rows, stack, seen_ops)

    def pre_hook(module, args):
        key = id(module)
        if key not in names or module is model:
            return
        parent = stack[-1] if stack else None
        base = names[key]
        # a module inside a repeated call of its parent is named under that call: block#2.conv
        outer = rows[parent] if parent is not None else None
        if outer is not None and outer.module_name and outer.name != outer.module_name \
                and base.startswith(outer.module_name + "."):
            base = outer.name + base[len(outer.module_name):]
        calls[base] += 1
        name = base if calls[base] == 1 else f"{base}#{calls[base]}"
        own = list(module.parameters(recurse=False))
        row = Row(name=name, type=type(module).__name__, kind="module",
                  depth=(rows[parent].depth + 1) if parent is not None else 1, parent=parent,
                  leaf=not any(True for _ in module.children()), module_name=names[key])
        if key in first_call:
            row.shared_with = first_call[key]
        else:
            first_call[key] = name
            row.params = sum(p.numel() for p in own)
            row.trainable_params = sum(p.numel() for p in own if p.requires_grad)
        rows.append(row)
        if parent is not None:
            rows[parent].children.append(len(rows) - 1)
        stack.append(len(rows) - 1)

    def post_hook(module, args, out):
        if id(module) not in names or module is model or not stack:
            return
        row = rows[stack.pop()]
        row.output_shape = _shape_of(out)
        t = _first_tensor(out)
        if t is not None:
            row.output_dtype = t.dtype
            row.rf = recorder.fields.get(t)

    handles = []
    for module in model.modules():
        if module is model:
            continue
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook))

    saved: dict[int, int] = {}
    param_storages = set()

    def pack(t):
        try:
            storage = t.untyped_storage()
            key = storage._cdata
            if key not in param_storages:
                saved[key] = max(saved.get(key, 0), storage.nbytes())
        except Exception:
            pass
        return t

    if x.dim() >= 3:
        recorder.fields[x] = rf_input(x.shape[-2], x.shape[-1])
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with recorder:
                out = call(x, param_storages)
    finally:
        for h in handles:
            h.remove()
        stack.clear()
    out_t = _first_tensor(out)
    out_rf = recorder.fields.get(out_t) if out_t is not None else None
    free = seen_ops.pop("free", 0)
    unknown_n = seen_ops.pop("unknown", 0)
    coverage = {
        "ops": free + unknown_n + sum(seen_ops.values()),
        "counted": sum(seen_ops.values()),
        "by_kind": {k: seen_ops.get(k, 0) for k in KINDS},
        "free": free,
        "unknown": dict(recorder.unknown),
    }
    saved_bytes = sum(saved.values()) if torch.is_grad_enabled() else None
    return Trace(rows=rows, input_shape=list(x.shape), input_dtype=x.dtype, output_rf=out_rf,
                 coverage=coverage, saved_bytes=saved_bytes, peak_bytes=recorder.peak)


def aggregate(rows: list[Row]) -> None:
    """Give every container the sums of its children (in place, children first)."""
    for i in range(len(rows) - 1, -1, -1):
        row = rows[i]
        if not row.children:
            continue
        for c in row.children:
            child = rows[c]
            row.params += child.params
            row.trainable_params += child.trainable_params
            row.memory += child.memory
            row.memory_bytes += child.memory_bytes
            row.ops.update(child.ops)


def per_image(count: int, batch: int) -> int | float:
    q, r = divmod(count, batch)
    return q if r == 0 else count / batch

