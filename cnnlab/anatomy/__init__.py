"""Anatomy: take any network apart layer by layer, the way the lecture does.

``cnnlab.analyze(model_or_name, input_size=None, batch_size=1, dtype=torch.float32)``
traces the model on the meta device (no data, no activations) and returns an
:class:`Anatomy`: per layer the output volume, memory, parameters, MACs and
receptive field; totals; renderers for the terminal, JSON, CSV and Markdown.
"""
__all__ = ["analyze", "Anatomy", "parse_input_size"]


def __getattr__(name):
    # Loaded on first use, so that importing cnnlab.anatomy.cli (for `cnnlab --help` or
    # an argument error) does not import torch.
    if name in ("analyze", "parse_input_size"):
        from cnnlab.anatomy import core

        return getattr(core, name)
    if name == "Anatomy":
        from cnnlab.anatomy.report import Anatomy

        return Anatomy
    raise AttributeError(f"module 'cnnlab.anatomy' has no attribute {name!r}")
