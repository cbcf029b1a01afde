"""Export to ONNX with a parity check against PyTorch (onnxruntime).

    >>> from cnnlab.export import export_onnx
    >>> r = export_onnx("resnet20", "resnet20.onnx")      # or a checkpoint / run folder
    >>> r.parity["max_abs_diff"]                           # onnxruntime vs PyTorch, same input

The command line is ``cnnlab export MODEL|CHECKPOINT --format onnx``.
"""
__all__ = ["export_onnx", "ExportError", "ExportResult", "Preprocess", "load_source", "DEFAULT_OPSET"]


def __getattr__(name):
    # loaded on first use, so that building the `cnnlab` parser does not import torch
    if name in __all__:
        from cnnlab.export import core

        return getattr(core, name)
    raise AttributeError(f"module 'cnnlab.export' has no attribute {name!r}")
