"""Export to ONNX with a parity check against PyTorch (onnxruntime).

    >>> from cnnlab.export import export_onnx
    >>> r = export_onnx("resnet20", "resnet20.onnx")      # or a checkpoint / run folder
    >>> r.parity["max_abs_diff"]                           # onnxruntime vs PyTorch, same input

The command line is ``cnnlab export MODEL|CHECKPOINT --format onnx``.
"""
from cnnlab.export.core import DEFAULT_OPSET, ExportError, ExportResult, Preprocess, export_onnx, load_source

__all__ = ["export_onnx", "ExportError", "ExportResult", "Preprocess", "load_source", "DEFAULT_OPSET"]
