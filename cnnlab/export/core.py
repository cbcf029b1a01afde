"""ONNX export of a registered model or a training checkpoint, checked against PyTorch.

The graph is captured with ``torch.export`` and translated by PyTorch's ONNX exporter
(``torch.onnx.export(..., dynamo=True)``, the exporter PyTorch maintains since 2.5; the
TorchScript one is deprecated). After writing the file, the same input goes through
the model in PyTorch and through the ONNX file in onnxruntime, and every output must
agree (``|onnx - torch| <= atol + rtol * |torch|``): an export that computes something
else is an error, not a file.

Two options serve the in-browser playground of ``cnnlab serve``:

* ``activations=True`` adds the output of every top-level layer (LeNet-5's c1, act1,
  s2, ...) as extra graph outputs, so the page can draw each layer's maps;
* ``preprocess=True`` (checkpoints only) puts the evaluation pipeline of
  :mod:`cnnlab.data` into the graph: the input is an image at the dataset's native size
  with 0-255 pixel values, resized or padded to the model's input and normalised with
  the training data's mean and std exactly as the test loader does.
"""
from __future__ import annotations

import logging
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["ExportError", "ExportResult", "export_onnx", "load_source", "Preprocess", "DEFAULT_OPSET"]

from cnnlab.export.cli import DEFAULT_OPSET


class ExportError(ValueError):
    """A model that cannot be exported, or whose export does not compute what PyTorch does."""


@dataclass
class ExportResult:
    path: str
    model: str
    source: str
    input_name: str
    input_shape: list[int]
    output_names: list[str]
    output_shapes: list[list[int]]
    opset: int
    bytes: int
    seconds: float
    parity: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Preprocess(nn.Module):
    """The test loader's pipeline for an in-memory dataset, as a module.

    0-255 images at the native size -> resize/pad to ``target`` (``cnnlab.data.augment``'s
    ``adapt_size``), rounded back to integers as the loader does when it adapts a whole
    dataset once up front, then ``(x / 255 - mean) / std``.
    """

    def __init__(self, native: Sequence[int], target: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 resize: str = "auto"):
        super().__init__()
        from cnnlab.data.augment import BatchPipeline

        self.native, self.target = tuple(int(v) for v in native), tuple(int(v) for v in target)
        pipe = BatchPipeline(self.native, self.target, mean, std, None, torch.device("cpu"), resize)
        self.plan = pipe.plan
        self.register_buffer("scale", pipe.scale.clone(), persistent=False)
        self.register_buffer("shift", pipe.shift.clone(), persistent=False)

    def describe(self) -> dict[str, Any]:
        return {"native": list(self.native), "target": list(self.target), "plan": self.plan,
                "pixel_range": [0, 255]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from cnnlab.data.augment import adapt_channels, adapt_size

        if self.plan != "none":
            x = adapt_size(x, self.target[1:], self.plan)
            if self.plan == "resize":
                x = x.round().clamp(0, 255)
        x = adapt_channels(x, self.target[0])
        return torch.addcmul(self.shift, x, self.scale)


class _Exportable(nn.Module):
    """The model in eval mode, optionally behind a :class:`Preprocess`, optionally also
    returning the output of each top-level layer."""

    def __init__(self, model: nn.Module, preprocess: Preprocess | None, activations: Sequence[str]):
        super().__init__()
        self.model = model
        self.preprocess = preprocess
        self.activation_names = list(activations)
        self._store: dict[str, torch.Tensor] = {}
        self._handles = [model.get_submodule(n).register_forward_hook(self._hook(n)) for n in self.activation_names]

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                self._store[name] = output
        return hook

    def forward(self, x: torch.Tensor):
        self._store = {}
        if self.preprocess is not None:
            x = self.preprocess(x)
        y = self.model(x)
        if not self.activation_names:
            return y
        return (y, *[self._store[n] for n in self.activation_names])


def load_source(source: str | os.PathLike | nn.Module, *, num_classes: int | None = None):
    """``(model in eval mode, name, checkpoint meta or None)`` for a registered model name,
    a checkpoint file or run folder, or a module."""
    from cnnlab.registry import create_model, is_model

    if isinstance(source, nn.Module):
        return source.eval(), type(source).__name__, None
    text = str(source)
    path = Path(text)
    if path.exists():
        from cnnlab.train import load_checkpoint, model_from_checkpoint

        state = load_checkpoint(path)
        meta = dict(state["meta"])
        if num_classes is not None and num_classes != int(meta.get("num_classes", -1)):
            raise ValueError(f"--num-classes is for a registered model: the checkpoint {path} has its own "
                             f"{meta.get('num_classes')} classes (a new classifier would be untrained)")
        return model_from_checkpoint(state, "cpu"), str(meta["model"]), meta
    if is_model(text):
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        return create_model(text, **kwargs).eval(), text, None
    if text.endswith((".pt", ".pth")) or os.sep in text:
        raise FileNotFoundError(f"no checkpoint at {text}")
    raise ValueError(f"{text!r} is neither a registered model (see `cnnlab models`) nor a checkpoint file or run folder")


_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)")
_OP = re.compile(r"\b(?:aten|prims)(?:\.|::)\w+(?:\.\w+)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _ops_in(exc: BaseException) -> list[str]:
    """Operators named in an exception chain: the graph node that failed first."""
    text = "\n".join(_ANSI.sub("", str(e)) for e in _chain(exc))
    seen: list[str] = []
    for op in _TARGET.findall(text) + [m.replace("::", ".") for m in _OP.findall(text)]:
        base = op.removesuffix(".default")
        if not base.startswith("aten.sym_") and not any(s.removesuffix(".default") == base for s in seen):
            seen.append(op)
    return seen


def _first_line(exc: BaseException) -> str:
    for line in _ANSI.sub("", str(exc)).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line[:300]
    return type(exc).__name__


def _reason(exc: BaseException) -> str:
    """The innermost cause's first line (the exporter wraps it in several layers)."""
    return _first_line(_chain(exc)[-1])


def export_onnx(
    source: str | os.PathLike | nn.Module,
    out: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    input_size: Any = None,
    batch_size: int = 1,
    num_classes: int | None = None,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    activations: bool | Sequence[str] = False,
    preprocess: bool = False,
    seed: int = 0,
) -> ExportResult:
    """Export ``source`` (a model name, a checkpoint or run folder, or a module) to ONNX.

    Returns what was written; raises :class:`ExportError` naming the operator when the
    model cannot be exported, or when onnxruntime does not reproduce PyTorch's outputs.
    The file is written atomically: a failed export leaves no file behind.
    """
    from cnnlab.anatomy.core import parse_input_size
    from cnnlab.registry import is_model, model_info

    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ValueError(f"--opset must be at least {DEFAULT_OPSET} (torch's ONNX exporter), got {opset!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    for flag, tol in (("atol", atol), ("rtol", rtol)):
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf"):
            raise ValueError(f"--{flag} must be a number >= 0 (the parity tolerance), got {tol!r}")
    if out is not None:  # before any work: the folder the file goes in must be makeable
        folder = Path(out).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise ValueError(f"--out {out}: {folder} is a file, so the output cannot be written under it")
    model, name, meta = load_source(source, num_classes=num_classes)
    channels = int(meta["input_size"][0]) if meta else None
    if input_size is None:
        if meta:
            size = tuple(int(v) for v in meta["input_size"])
        elif is_model(name):
            size = tuple(model_info(name).input_size)
        else:
            raise ValueError("input_size is required for a module that is not registered, e.g. (3, 224, 224)")
    else:
        if channels is None:
            channels = model_info(name).input_size[0] if is_model(name) else 3
        size = parse_input_size(input_size, channels)

    pre = None
    if preprocess:
        if meta is None:
            raise ValueError("preprocess needs a checkpoint: only a checkpoint knows its data's size, mean and std")
        native = (int(meta["dataset_channels"]), *[int(v) for v in (meta.get("dataset_image_size") or size[1:])])
        pre = Preprocess(native, size, meta["mean"], meta["std"])
        example_shape = (batch_size, *native)
    else:
        example_shape = (batch_size, *size)

    if activations is True:
        names = [n for n, _ in model.named_children()]
    else:
        names = list(activations or [])
        known = dict(model.named_modules())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"activations: {name} has no layer {', '.join(map(repr, unknown))}; its top-level "
                             f"layers: {', '.join(n for n, _ in model.named_children())}")
    wrapper = _Exportable(model, pre, names).eval()
    try:
        return _export_checked(wrapper, name, source, pre, names, example_shape, out, opset, check, atol, rtol, seed)
    finally:
        wrapper.remove_hooks()


def _export_checked(wrapper, name, source, pre, names, example_shape, out, opset, check, atol, rtol, seed):
    g = torch.Generator().manual_seed(seed)
    if pre is not None:
        x = torch.randint(0, 256, example_shape, generator=g).float()
    else:
        x = torch.randn(example_shape, generator=g)
    with torch.no_grad():
        try:
            expected = wrapper(x)
        except Exception as exc:  # the model refuses this input: say so before exporting
            raise ValueError(f"{name} does not run on input {tuple(x.shape)}: {_first_line(exc)}") from None
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    output_names = ["logits", *names]

    out = Path(out) if out is not None else Path(f"{name}.onnx")
    if out.is_dir():
        out = out / f"{name}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    start = time.perf_counter()
    try:
        proto = _export(wrapper, x, name, opset, output_names).model_proto  # built anew on each access
        if proto.ByteSize() >= 2**31 - 1:
            raise ExportError(f"{name} is larger than 2 GB, ONNX's limit for a single file")
        blob = proto.SerializeToString()
        del proto
        parity = _parity(blob, x, expected, output_names, atol, rtol, name) if check else {"checked": False}
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(
        path=str(out), model=name, source=str(source) if not isinstance(source, nn.Module) else name,
        input_name="input", input_shape=list(x.shape), output_names=output_names,
        output_shapes=[list(t.shape) for t in expected], opset=opset, bytes=len(blob),
        seconds=round(time.perf_counter() - start, 3), parity=parity,
        preprocess=pre.describe() if pre is not None else None,
    )


def _export(wrapper: nn.Module, x: torch.Tensor, name: str, opset: int, output_names: list[str]):
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.onnx.export(wrapper, (x,), None, dynamo=True, opset_version=opset, verbose=False,
                                     input_names=["input"], output_names=output_names, optimize=True)
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the onnx and onnxscript packages: pip install 'cnnlab[export]' "
                          f"({exc})") from None
    except Exception as exc:
        ops = _ops_in(exc)
        where = f": operator {ops[0]}" if ops else ""
        raise ExportError(f"{name} cannot be exported to ONNX opset {opset}{where}: {_reason(exc)}") from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


def _parity(blob: bytes, x: torch.Tensor, expected: list[torch.Tensor], names: list[str], atol: float, rtol: float,
            model: str) -> dict[str, Any]:
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        raise ImportError("the parity check needs onnxruntime: pip install 'cnnlab[export]' (or pass --no-check)") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    try:
        session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    except Exception as exc:
        ops = re.findall(r"[Oo]p(?:erator)?\s*\(?['\"]?(\w+)", str(exc))
        where = f" (operator {ops[0]})" if ops else ""
        raise ExportError(f"onnxruntime cannot run the exported {model}{where}: {_first_line(exc)}") from None
    worst, worst_name = 0.0, names[0]
    for name, want, have in zip(names, expected, got):
        want = want.detach().numpy()
        if want.shape != have.shape:
            raise ExportError(f"exported {model} gives output {name} of shape {have.shape}, PyTorch {want.shape}")
        diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
        excess = diff - (atol + rtol * np.abs(want.astype(np.float64)))
        if not np.isfinite(have).all() and np.isfinite(want).all():
            raise ExportError(f"exported {model} gives non-finite values in output {name}")
        if diff.size and (excess > 0).any():
            raise ExportError(f"exported {model} does not match PyTorch: output {name} differs by up to "
                              f"{float(diff.max()):.3g} (tolerance {atol:g} + {rtol:g} * |value|)")
        if diff.size and float(diff.max()) >= worst:
            worst, worst_name = float(diff.max()), name
    return {"checked": True, "runtime": f"onnxruntime {ort.__version__}", "max_abs_diff": worst,
            "worst_output": worst_name, "atol": atol, "rtol": rtol, "input": f"seeded random {tuple(x.shape)}"}
