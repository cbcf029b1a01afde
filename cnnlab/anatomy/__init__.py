"""Anatomy: take any network apart layer by layer, the way the lecture does.

``cnnlab.analyze(model_or_name, input_size=None, batch_size=1, dtype=torch.float32)``
traces the model on the meta device (no data, no activations) and returns an
:class:`Anatomy`: per layer the output volume, memory, parameters, MACs and
receptive field; totals; renderers for the terminal, JSON, CSV and Markdown.
"""
from cnnlab.anatomy.core import analyze, parse_input_size
from cnnlab.anatomy.report import Anatomy

__all__ = ["analyze", "Anatomy", "parse_input_size"]
