"""What each aten op costs, and what it does to a receptive field.

Costs are counted per aten op (the level every ``nn.Module``, ``F.*`` call, tensor
method and operator ends up at), in *kinds*:

- ``conv``: multiply-accumulates of ``aten.convolution`` (output values x input
  channels per group x kernel area); bias additions are not counted.
- ``linear``: multiply-accumulates of ``mm``/``addmm``/``bmm``/``baddbmm``/``mv``/``dot``
  (what ``nn.Linear``, ``F.linear``, ``@`` and ``torch.matmul`` become).
- ``norm``: one op per output value of a batch/layer/group norm.
- ``act``: one op per output value of an activation (ReLU, sigmoid, softmax, ...).
- ``pool``: one op per input value read by a pooling window (output values x window
  area; global and adaptive pools and spatial means read each input value once).
- ``eltwise``: one op per output value of an elementwise arithmetic op (``x + y``,
  ``x * s``, ...).

Ops that move or create data without arithmetic (views, ``cat``, padding, copies,
``zeros``) cost nothing by definition and are ``free``. Any other op is *unknown*:
it is listed in the analysis's coverage, never silently counted as zero.

Receptive fields are propagated per tensor as ``(size, jump, start)`` for each of
the last two (spatial) dimensions, in input pixels: ``size`` is how many input
pixels one output value sees, ``jump`` the distance in input pixels between two
neighbouring output values, ``start`` the centre of the first output value's field
(pixel ``i`` spans ``[i, i + 1]``). A kernel ``k`` (dilated to ``d(k-1)+1``) with
stride ``s`` and padding ``p`` gives ``size + (k-1) j``, ``j s`` and
``start + ((k-1)/2 - p) j``. Where tensors merge (``x + y``, ``torch.cat``) the
fields are united: the merged field spans both.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

__all__ = ["KINDS", "op_kind", "op_cost", "RF", "rf_input", "rf_for_op"]

KINDS = ("conv", "linear", "norm", "act", "pool", "eltwise")


def _numel(t: Any) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


# ---------------------------------------------------------------------------
# Costs
# ---------------------------------------------------------------------------

def _conv_macs(args, out):
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    kernel = math.prod(w.shape[2:])
    if transposed:  # weight is (C_in, C_out / groups, k...): every input value feeds C_out/g * k outputs
        return _numel(x) * w.shape[1] * kernel
    return _numel(_first(out)) * w.shape[1] * kernel


def _mm_macs(args, out):
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1]


def _addmm_macs(args, out):
    return _mm_macs(args[1:], out)


def _bmm_macs(args, out):
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _baddbmm_macs(args, out):
    return _bmm_macs(args[1:], out)


def _mv_macs(args, out):
    return args[0].shape[0] * args[0].shape[1]


def _dot_macs(args, out):
    return _numel(args[0])


def _out_values(args, out):
    return _numel(_first(out))


def _in_values(args, out):
    return _numel(args[0])


def _pair(v: Any, n: int = 2) -> list[int]:
    if v is None:
        return []
    if isinstance(v, int):
        return [v] * n
    v = list(v)
    return v * n if len(v) == 1 else v


def _window_reads(args, out):
    window = math.prod(_pair(args[1])) if len(args) > 1 else 1
    return _numel(_first(out)) * window


_COSTS: dict[str, tuple[str, Callable[[tuple, Any], int]]] = {
    "convolution": ("conv", _conv_macs),
    "mm": ("linear", _mm_macs),
    "addmm": ("linear", _addmm_macs),
    "bmm": ("linear", _bmm_macs),
    "baddbmm": ("linear", _baddbmm_macs),
    "mv": ("linear", _mv_macs),
    "dot": ("linear", _dot_macs),
}
for _name in ("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
              "_native_batch_norm_legit_functional", "native_layer_norm", "native_group_norm",
              "_batch_norm_with_update", "_batch_norm_no_update", "batch_norm"):
    _COSTS[_name] = ("norm", _out_values)
for _name in ("relu", "relu_", "gelu", "gelu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardtanh", "hardtanh_",
              "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "silu", "silu_", "leaky_relu",
              "leaky_relu_", "elu", "elu_", "threshold", "threshold_", "softplus", "mish", "mish_",
              "_softmax", "_log_softmax", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max",
              "clamp_max_", "prelu", "_prelu_kernel", "log_sigmoid_forward", "selu", "celu", "rrelu"):
    _COSTS[_name] = ("act", _out_values)
for _name in ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "max_pool3d_with_indices", "avg_pool3d",
              "max_pool1d", "avg_pool1d", "max_pool1d_with_indices"):
    _COSTS[_name] = ("pool", _window_reads)
for _name in ("_adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool3d",
              "mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "logsumexp", "norm",
              "linalg_vector_norm"):
    _COSTS[_name] = ("pool", _in_values)
for _name in ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "addcmul", "addcmul_", "addcdiv",
              "addcdiv_", "neg", "neg_", "pow", "pow_", "sqrt", "sqrt_", "rsqrt", "rsqrt_", "exp", "exp_",
              "log", "log_", "where", "maximum", "minimum", "abs", "abs_", "sign", "reciprocal",
              "reciprocal_", "lerp", "lerp_", "square", "rsub", "floor", "ceil", "round", "erf", "sin", "cos",
              "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and",
              "fmod", "remainder", "masked_fill", "masked_fill_", "mul_scalar", "trunc", "frac",
              "upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d"):
    _COSTS[_name] = ("eltwise", _out_values)

# Ops that only move, create, reshape or copy data: no arithmetic by definition.
_FREE = {
    "cat", "stack", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "pad", "clone", "_to_copy",
    "copy_", "copy", "contiguous", "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones",
    "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_empty", "new_full", "new_empty_strided",
    "fill_", "fill", "zero_", "detach", "detach_", "lift_fresh", "lift_fresh_copy", "scalar_tensor", "arange",
    "index_select", "index", "gather", "slice_scatter", "select_scatter", "index_put", "index_put_",
    "flip", "roll", "repeat", "bernoulli_", "bernoulli", "native_dropout", "rand", "rand_like", "randn",
    "randn_like", "uniform_", "normal_", "randint", "_unsafe_view", "sym_size", "sym_stride", "sym_numel",
    "dropout", "feature_dropout", "alpha_dropout", "channel_shuffle", "pixel_shuffle", "pixel_unshuffle",
    "_local_scalar_dense", "item", "resize_", "set_", "split_with_sizes_copy", "unbind_copy", "masked_select",
    "expand_copy", "permute_copy", "view_copy", "transpose_copy", "t_copy", "_reshape_copy", "tensor",
}


def op_name(func) -> str:
    return func._schema.name.split("::")[-1]


def is_view_or_inplace(func) -> bool:
    """True when the op's first result aliases an input (a view, an in-place or out= op)."""
    returns = func._schema.returns
    return bool(returns) and returns[0].alias_info is not None


def is_view(func) -> bool:
    """True when the op's first result is a view of an input (aliases it without writing)."""
    returns = func._schema.returns
    return bool(returns) and returns[0].alias_info is not None and not returns[0].alias_info.is_write


def op_kind(func) -> str:
    """``conv``/``linear``/... for counted ops, ``free`` or ``unknown``. An in-place op is
    free only when it is listed as such (``fill_``, ``copy_``): one that computes is unknown
    until it is counted."""
    name = op_name(func)
    if name in _COSTS:
        return _COSTS[name][0]
    if name in _FREE or is_view(func):
        return "free"
    return "unknown"


def op_cost(func, args: tuple, out: Any) -> tuple[str, int]:
    """``(kind, count)`` of one op call, counted for the whole batch."""
    name = op_name(func)
    entry = _COSTS.get(name)
    if entry is None:
        return op_kind(func), 0
    kind, fn = entry
    try:
        return kind, int(fn(args, out))
    except Exception:  # an overload with an unexpected signature: say so rather than guess
        return "unknown", 0


# ---------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------

class RF(tuple):
    """Receptive field of a tensor: ``(hw, h, w)`` where ``hw`` is the spatial size the
    field refers to (``None`` once the spatial layout is gone) and ``h``/``w`` are
    ``(size, jump, start)`` in input pixels."""

    __slots__ = ()

    def __new__(cls, hw, h, w):
        return super().__new__(cls, (hw, h, w))

    @property
    def hw(self):
        return self[0]

    def size(self) -> int | list[int]:
        h, w = round(self[1][0]), round(self[2][0])
        return h if h == w else [h, w]

    def jump(self) -> float | list[float] | None:
        if self.hw is None:
            return None
        h, w = _clean(self[1][1]), _clean(self[2][1])
        return h if h == w else [h, w]

    def start(self) -> float | list[float]:
        h, w = _clean(self[1][2]), _clean(self[2][2])
        return h if h == w else [h, w]


def _clean(v: float) -> float | int:
    return int(v) if float(v).is_integer() else round(v, 4)


def rf_input(h: int, w: int) -> RF:
    return RF((h, w), (1.0, 1.0, 0.5), (1.0, 1.0, 0.5))


def _kernel(d, k, s, p, dil=1):
    size, jump, start = d
    k_eff = dil * (k - 1) + 1
    return (size + (k_eff - 1) * jump, jump * s, start + ((k_eff - 1) / 2 - p) * jump)


def _collapse(rf: RF) -> RF:
    """The field of a value that depends on every spatial position (a global pool, a
    flatten followed by a linear layer): a window as large as the whole map."""
    if rf.hw is None:
        return rf
    h, w = rf.hw
    return RF(None, _kernel(rf[1], h, h, 0), _kernel(rf[2], w, w, 0))


def _union(rfs: list[RF], hw) -> RF:
    dims = []
    for i in (1, 2):
        lo = min(r[i][2] - r[i][0] / 2 for r in rfs)
        hi = max(r[i][2] + r[i][0] / 2 for r in rfs)
        jump = max(r[i][1] for r in rfs)
        dims.append((hi - lo, jump, (lo + hi) / 2))
    return RF(hw, dims[0], dims[1])


def _spatial(t: Any):
    return tuple(t.shape[-2:]) if isinstance(t, torch.Tensor) and t.dim() >= 3 else None


def _window(rf: RF, out_hw, kernel, stride, padding, dilation) -> RF:
    kernel, stride = _pair(kernel), _pair(stride) or _pair(kernel)
    padding, dilation = _pair(padding or 0), _pair(dilation or 1)
    k, s, p, d = kernel[-2:], stride[-2:], padding[-2:], dilation[-2:]
    return RF(out_hw, _kernel(rf[1], k[0], s[0], p[0], d[0]), _kernel(rf[2], k[1], s[1], p[1], d[1]))


def _adaptive(rf: RF, out_hw) -> RF:
    dims = []
    for i, (n_in, n_out) in enumerate(zip(rf.hw, out_hw), start=1):
        # the widest window an adaptive pool uses, and its average step
        k = max(math.ceil((j + 1) * n_in / n_out) - (j * n_in) // n_out for j in range(n_out))
        size, jump, start = rf[i]
        dims.append((size + (k - 1) * jump, jump * n_in / n_out, start + (k - 1) / 2 * jump))
    return RF(out_hw, dims[0], dims[1])


def rf_for_op(func, args: tuple, out: Any, inputs: list[tuple[Any, RF]]) -> RF | None:
    """The receptive field of ``out`` given the fields of its tagged tensor inputs."""
    if not inputs:
        return None
    name = op_name(func)
    out_t = _first(out)
    out_hw = _spatial(out_t)
    first_t, first = inputs[0]
    if first.hw is not None and out_hw is not None and first_t is args[0]:
        if name == "convolution" and args[1].dim() == 4:
            w = args[1]
            if args[6]:  # transposed: the output grid is finer by the stride
                s = _pair(args[3])
                dims = []
                for i, (k, st, p) in enumerate(zip(w.shape[2:], s, _pair(args[4])), start=1):
                    size, jump, start = first[i]
                    j = jump / st
                    dims.append((size + (k - 1) * j, j, start + ((k - 1) / 2 - p) * j))
                return RF(out_hw, dims[0], dims[1])
            return _window(first, out_hw, list(w.shape[2:]), args[3], args[4], args[5])
        if name in ("max_pool2d_with_indices", "max_pool2d", "max_pool3d_with_indices"):
            return _window(first, out_hw, args[1], args[2] if len(args) > 2 else None,
                           args[3] if len(args) > 3 else 0, args[4] if len(args) > 4 else 1)
        if name in ("avg_pool2d", "avg_pool3d"):
            return _window(first, out_hw, args[1], args[2] if len(args) > 2 else None,
                           args[3] if len(args) > 3 else 0, 1)
        if name in ("_adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool3d"):
            return _adaptive(first, out_hw)
        if name == "constant_pad_nd":
            pad = list(args[1]) + [0, 0, 0, 0]
            (sh, jh, oh), (sw, jw, ow) = first[1], first[2]
            return RF(out_hw, (sh, jh, oh - pad[2] * jh), (sw, jw, ow - pad[0] * jw))
        if name == "slice" and len(args) > 1:
            dim = args[1] % args[0].dim()
            if dim >= args[0].dim() - 2:
                begin = args[2] if len(args) > 2 and args[2] is not None else 0
                step = args[4] if len(args) > 4 else 1
                n = args[0].shape[dim]
                begin = max(0, begin + n if begin < 0 else begin)
                i = 1 if dim == args[0].dim() - 2 else 2
                size, jump, start = first[i]
                moved = (size, jump * step, start + begin * jump)
                dims = [first[1], first[2]]
                dims[i - 1] = moved
                return RF(out_hw, dims[0], dims[1])
        if name in ("upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d"):
            dims = []
            for i, (n_in, n_out) in enumerate(zip(first.hw, out_hw), start=1):
                size, jump, start = first[i]
                dims.append((size, jump * n_in / n_out, start))
            return RF(out_hw, dims[0], dims[1])
    # Everything else keeps the spatial grid when the output's last two dimensions are
    # those of its inputs (elementwise ops, norms, channel concats, channel views);
    # otherwise every output value may depend on every position.
    fields = []
    for _, rf in inputs:
        if rf.hw is not None and rf.hw != out_hw:
            rf = _collapse(rf)
        fields.append(rf)
    hw = out_hw if all(rf.hw is not None for rf in fields) else None
    if hw is None:
        fields = [_collapse(rf) for rf in fields]
    return fields[0] if len(fields) == 1 and fields[0].hw == hw else _union(fields, hw)
