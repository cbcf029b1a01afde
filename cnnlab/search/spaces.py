"""Search spaces: an architecture is a sequence of tokens, one per decision.

A :class:`SearchSpace` lists its decisions (each a name and the values it can take).
Every strategy works on token sequences (``tokens[i]`` indexes ``decisions[i].choices``);
the space turns tokens into a readable, JSON-able architecture (:meth:`decode`) and into
a network (:meth:`build`).

Two spaces from the papers:

* ``layers`` — Zoph & Le 2016 ("Neural Architecture Search with Reinforcement
  Learning", arXiv:1611.01578, Sec. 3.1 and 3.3): a plain stack of convolution layers;
  per layer the filter height, filter width and number of filters, and skip connections
  to any earlier layer. A layer concatenates the outputs it reads in depth and reads the
  image when it reads no layer; the outputs that no later layer reads are concatenated
  and go to the classifier. Each layer is conv -> BN -> ReLU at stride 1 (the paper also
  has a variant that predicts strides; not here). The paper predicts each skip
  connection with a content-based sigmoid ("anchor points"); here each skip is a binary
  token with its own softmax (a 2-way softmax is a sigmoid of one logit), emitted by the
  same LSTM in the same order.
* ``nasnet`` — Zoph et al. 2017 ("Learning Transferable Architectures for Scalable
  Image Recognition", arXiv:1707.07012, Sec. 3): a normal and a reduction cell of B = 5
  blocks; each block picks a first and a second input (h0, h1 or an earlier block), an
  operation for each from the paper's 13 and a combination (add or concatenate), in that
  order (the paper's five steps). Block outputs no block reads are concatenated into the
  cell's output. The two cells are :class:`~cnnlab.layers.nas_cell.Genotype` values that
  :class:`~cnnlab.models.nasnet.NASNet` stacks (a small CIFAR-stem proxy network by
  default: F = 8, N = 1, as a laptop can train; set ``filters`` / ``cells_per_stage``).

``layers-tiny`` is the ``layers`` space cut down to 512 architectures (3 layers, 1 or 3
pixel filter heights and widths, 16 filters, skips) so that every architecture in it can
be trained once: the tabular benchmark (:mod:`cnnlab.search.tabular`).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from cnnlab.models.base import CnnModel

__all__ = ["Decision", "SearchSpace", "LayersSpace", "NasnetSpace", "LayerNet", "SPACES", "get_space", "list_spaces"]


@dataclass(frozen=True)
class Decision:
    """One token of an architecture: its name and the values it can take."""

    name: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace:
    """Base class: ``decisions`` fixed at construction; subclasses decode and build."""

    name: str = ""
    decisions: tuple[Decision, ...]
    args: dict[str, Any]

    # -- tokens -------------------------------------------------------------------------
    @property
    def num_architectures(self) -> int:
        return math.prod(d.size for d in self.decisions)

    def check_tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        tokens = tuple(int(t) for t in tokens)
        if len(tokens) != len(self.decisions):
            raise ValueError(f"space {self.name!r} takes {len(self.decisions)} tokens, got {len(tokens)}")
        for t, d in zip(tokens, self.decisions):
            if not 0 <= t < d.size:
                raise ValueError(f"token for {d.name} must be in 0..{d.size - 1}, got {t}")
        return tokens

    def random_tokens(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(d.size) for d in self.decisions)

    def key(self, tokens: Sequence[int]) -> str:
        """A compact string that names the architecture (its tokens)."""
        return "-".join(str(int(t)) for t in tokens)

    def index(self, tokens: Sequence[int]) -> int:
        """The architecture's number in 0..num_architectures-1 (mixed radix, first token most significant)."""
        i = 0
        for t, d in zip(self.check_tokens(tokens), self.decisions):
            i = i * d.size + t
        return i

    def tokens_at(self, index: int) -> tuple[int, ...]:
        out = []
        for d in reversed(self.decisions):
            index, t = divmod(index, d.size)
            out.append(t)
        return tuple(reversed(out))

    def describe(self) -> dict[str, Any]:
        return {"space": self.name, "args": self.args, "decisions": [[d.name, list(d.choices)] for d in self.decisions],
                "num_architectures": self.num_architectures}

    # -- architectures ------------------------------------------------------------------
    def decode(self, tokens: Sequence[int]) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, arch: dict[str, Any]) -> tuple[int, ...]:
        raise NotImplementedError

    def build(self, arch: dict[str, Any] | Sequence[int], *, num_classes: int, in_chans: int) -> nn.Module:
        raise NotImplementedError

    def _arch(self, arch) -> dict[str, Any]:
        return self.decode(arch) if not isinstance(arch, dict) else arch


def _positive_ints(label: str, values) -> tuple[int, ...]:
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{label} must be a list of positive integers, got {values!r}")
    return values


def _positive_int(label: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{label} must be a positive integer, got {value!r}")
    return value


# --------------------------------------------------------------------------- layers space


class LayerNet(CnnModel):
    """The network of a ``layers`` architecture (Zoph & Le 2016, Sec. 3.3).

    ``layers[i]`` = ``{"filter_height", "filter_width", "filters", "inputs"}``, where
    ``inputs`` lists the earlier layers it reads (empty: the image).
    """

    def __init__(self, layers: list[dict[str, Any]], *, num_classes: int, in_chans: int):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.layer_specs = layers
        width = []
        self.convs = nn.ModuleList()
        for i, spec in enumerate(layers):
            kh, kw = spec["filter_height"], spec["filter_width"]
            cin = sum(width[j] for j in spec["inputs"]) if spec["inputs"] else in_chans
            self.convs.append(nn.Sequential(
                nn.Conv2d(cin, spec["filters"], (kh, kw), padding=(kh // 2, kw // 2), bias=False),
                nn.BatchNorm2d(spec["filters"]), nn.ReLU(inplace=True)))
            width.append(spec["filters"])
        read = {j for spec in layers for j in spec["inputs"]}
        self.outputs = [i for i in range(len(layers)) if i not in read or i == len(layers) - 1]
        self.num_features = sum(width[i] for i in self.outputs)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for spec, conv in zip(self.layer_specs, self.convs):
            inp = torch.cat([outs[j] for j in spec["inputs"]], 1) if spec["inputs"] else x
            outs.append(conv(inp))  # N x filters x H x W (stride 1, 'same' padding)
        return torch.cat([outs[i] for i in self.outputs], 1)


class LayersSpace(SearchSpace):
    """Zoph & Le's layer-by-layer CNN space. Per layer, in the paper's order: filter
    height, filter width, number of filters, then one skip token per earlier layer."""

    name = "layers"

    def __init__(self, num_layers: int = 6, filter_heights=(1, 3, 5, 7), filter_widths=(1, 3, 5, 7),
                 num_filters=(24, 36, 48, 64), skips: bool = True):
        self.num_layers = _positive_int("num_layers", num_layers)
        self.filter_heights = _positive_ints("filter_heights", filter_heights)
        self.filter_widths = _positive_ints("filter_widths", filter_widths)
        self.num_filters = _positive_ints("num_filters", num_filters)
        if any(k % 2 == 0 for k in self.filter_heights + self.filter_widths):
            raise ValueError("filter heights and widths must be odd (stride-1 'same' padding keeps the size)")
        self.skips = bool(skips)
        self.args = {"num_layers": self.num_layers, "filter_heights": list(self.filter_heights),
                     "filter_widths": list(self.filter_widths), "num_filters": list(self.num_filters),
                     "skips": self.skips}
        decisions = []
        for i in range(self.num_layers):
            # a decision with a single value carries no choice: it is left out of the tokens
            for label, values in (("filter_height", self.filter_heights), ("filter_width", self.filter_widths),
                                  ("filters", self.num_filters)):
                if len(values) > 1:
                    decisions.append(Decision(f"layer{i}.{label}", values))
            if self.skips:
                for j in range(i):
                    decisions.append(Decision(f"layer{i}.reads_layer{j}", (False, True)))
        self.decisions = tuple(decisions)

    def decode(self, tokens: Sequence[int]) -> dict[str, Any]:
        values = {d.name: d.choices[t] for d, t in zip(self.decisions, self.check_tokens(tokens))}
        layers = []
        for i in range(self.num_layers):
            if self.skips:
                inputs = [j for j in range(i) if values[f"layer{i}.reads_layer{j}"]]
            else:
                inputs = [i - 1] if i else []
            layers.append({
                "filter_height": values.get(f"layer{i}.filter_height", self.filter_heights[0]),
                "filter_width": values.get(f"layer{i}.filter_width", self.filter_widths[0]),
                "filters": values.get(f"layer{i}.filters", self.num_filters[0]),
                "inputs": inputs,
            })
        return {"layers": layers}

    def encode(self, arch: dict[str, Any]) -> tuple[int, ...]:
        layers = arch.get("layers") if isinstance(arch, dict) else None
        if not isinstance(layers, list) or len(layers) != self.num_layers:
            raise ValueError(f"a {self.name} architecture needs 'layers': a list of {self.num_layers} layers")
        tokens = []
        for d in self.decisions:
            layer, field = d.name.split(".")
            spec = layers[int(layer[5:])]
            if field.startswith("reads_layer"):
                value = int(field[11:]) in spec.get("inputs", [])
            else:
                value = spec.get(field)
            if value not in d.choices:
                raise ValueError(f"{d.name} = {value!r} is not in the space ({list(d.choices)})")
            tokens.append(d.choices.index(value))
        return tuple(tokens)

    def build(self, arch, *, num_classes: int, in_chans: int) -> nn.Module:
        return LayerNet(self._arch(arch)["layers"], num_classes=num_classes, in_chans=in_chans)


class LayersTinySpace(LayersSpace):
    """``layers`` cut to 512 architectures, small enough to train every one (the tabular benchmark)."""

    name = "layers-tiny"

    def __init__(self):
        super().__init__(num_layers=3, filter_heights=(1, 3), filter_widths=(1, 3), num_filters=(16,), skips=True)
        self.args = {}


# --------------------------------------------------------------------------- nasnet space

# Zoph et al. 2017, Sec. 3: the 13 operations, with cnnlab's names (cnnlab.layers.nas_cell.OPS).
NASNET_OPS = ("identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
              "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5",
              "sep_conv_7x7")


class NasnetSpace(SearchSpace):
    """NASNet-A's cell space: normal cell then reduction cell, B blocks each, five tokens per
    block (first input, second input, first op, second op, combination)."""

    name = "nasnet"

    def __init__(self, num_blocks: int = 5, ops: Sequence[str] = NASNET_OPS, combine=("add", "concat"),
                 filters: int = 8, cells_per_stage: int = 1, stem_chs: int = 16):
        from cnnlab.layers.nas_cell import OPS

        self.num_blocks = _positive_int("num_blocks", num_blocks)
        ops = tuple(ops)
        bad = [o for o in ops if o not in OPS]
        if not ops or bad:
            raise ValueError(f"unknown op(s) {bad}; known ops: {', '.join(OPS)}")
        combine = tuple(combine)
        if not combine or any(c not in ("add", "concat") for c in combine):
            raise ValueError(f"combine must list 'add' and/or 'concat', got {list(combine)}")
        self.ops, self.combine = ops, combine
        self.filters = _positive_int("filters", filters)
        self.cells_per_stage = _positive_int("cells_per_stage", cells_per_stage)
        self.stem_chs = _positive_int("stem_chs", stem_chs)
        self.args = {"num_blocks": self.num_blocks, "ops": list(ops), "combine": list(combine), "filters": self.filters,
                     "cells_per_stage": self.cells_per_stage, "stem_chs": self.stem_chs}
        decisions = []
        for cell in ("normal", "reduction"):
            for b in range(self.num_blocks):
                states = tuple(range(2 + b))
                decisions += [Decision(f"{cell}.block{b}.left", states), Decision(f"{cell}.block{b}.right", states),
                              Decision(f"{cell}.block{b}.left_op", ops), Decision(f"{cell}.block{b}.right_op", ops)]
                if len(combine) > 1:
                    decisions.append(Decision(f"{cell}.block{b}.combine", combine))
        self.decisions = tuple(decisions)

    def decode(self, tokens: Sequence[int]) -> dict[str, Any]:
        values = {d.name: d.choices[t] for d, t in zip(self.decisions, self.check_tokens(tokens))}
        arch = {}
        for cell in ("normal", "reduction"):
            blocks = []
            for b in range(self.num_blocks):
                p = f"{cell}.block{b}."
                blocks.append([values[p + "left"], values[p + "left_op"], values[p + "right"], values[p + "right_op"],
                               values.get(p + "combine", self.combine[0])])
            used = {s for blk in blocks for s in (blk[0], blk[2])}
            arch[cell] = {"blocks": blocks, "concat": [s for s in range(2, 2 + self.num_blocks) if s not in used]}
        return arch

    def encode(self, arch: dict[str, Any]) -> tuple[int, ...]:
        tokens = []
        try:
            for d in self.decisions:
                cell, block, field = d.name.split(".")
                blk = arch[cell]["blocks"][int(block[5:])]
                value = blk[("left", "left_op", "right", "right_op", "combine").index(field)]
                if value not in d.choices:
                    raise ValueError(f"{d.name} = {value!r} is not in the space")
                tokens.append(d.choices.index(value))
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"not a {self.name} architecture with {self.num_blocks} blocks per cell ({exc})") from None
        return tuple(tokens)

    def genotypes(self, arch) -> tuple[Any, Any]:
        """The (normal, reduction) :class:`~cnnlab.layers.nas_cell.Genotype` pair."""
        from cnnlab.layers.nas_cell import Block, Genotype

        arch = self._arch(arch)
        out = []
        for cell in ("normal", "reduction"):
            blocks = tuple(Block(int(l), lo, int(r), ro, c) for l, lo, r, ro, c in arch[cell]["blocks"])
            out.append(Genotype(blocks, tuple(arch[cell]["concat"]), reduction=cell == "reduction"))
        return out[0], out[1]

    def build(self, arch, *, num_classes: int, in_chans: int) -> nn.Module:
        from cnnlab.models.nasnet import NASNet

        normal, reduction = self.genotypes(arch)
        return NASNet(normal=normal, reduction=reduction, stem="cifar", filters=self.filters,
                      cells_per_stage=self.cells_per_stage, stem_chs=self.stem_chs, pad_type="symmetric",
                      skip_reduction_input=False, num_classes=num_classes, in_chans=in_chans, bn_eps=1e-5)


SPACES = {"layers": LayersSpace, "layers-tiny": LayersTinySpace, "nasnet": NasnetSpace}


def list_spaces() -> list[str]:
    return list(SPACES)


def get_space(name: str, **args: Any) -> SearchSpace:
    """The search space ``name`` with ``args`` (e.g. ``get_space("nasnet", num_blocks=2)``)."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; choose from {', '.join(SPACES)}")
    import inspect

    params = inspect.signature(SPACES[name]).parameters
    accepted = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
    takes_any = any(v.kind == v.VAR_KEYWORD for v in params.values())
    unknown = [] if takes_any else [k for k in args if k not in accepted]
    if unknown:
        raise ValueError(f"space {name!r}: unexpected keyword option {', '.join(unknown)}; its options: "
                         f"{', '.join(accepted) or '(none)'} (--space-option KEY=VALUE)")
    try:
        return SPACES[name](**args)
    except TypeError as exc:
        raise ValueError(f"space {name!r}: {exc}") from None
