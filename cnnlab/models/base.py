"""The surface every cnnlab model shares.

``forward(x) = forward_head(forward_features(x))``; ``num_classes``, ``num_features``
(the width of the features the classifier reads), ``in_chans`` and
``reset_classifier(n)``. Models with auxiliary classifiers return an
:class:`AuxOutput` in training mode only and declare ``aux_loss_weights``.

The head methods have defaults for the common shape: the classifier is the submodule
named by ``classifier_name``, and ``forward_head`` is global pool -> flatten ->
dropout (if any) -> classifier. A model whose head looks different overrides them.
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple, Sequence

import torch
from torch import nn

from cnnlab.errors import UserError

__all__ = [
    "CnnModel", "AuxOutput", "InputError", "InputSizeError", "InputTypeError", "FeatureInfo", "FeatureNet",
    "check_num_classes", "fresh_class_layer",
]


class InputError(UserError):
    """An input a model cannot take."""


class InputSizeError(InputError):
    """An input a model cannot take: wrong rank, wrong channel count, or too small."""


class InputTypeError(InputError, TypeError):
    """An input that is not a floating-point tensor of the model's dtype (also a ``TypeError``)."""


class AuxOutput(NamedTuple):
    """Training-mode output of a model with auxiliary classifiers.

    ``aux`` holds the auxiliary logits in the order of the model's
    ``aux_loss_weights``; the training loss is
    ``CE(logits) + sum(w * CE(a) for w, a in zip(model.aux_loss_weights, aux))``.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


def check_num_classes(num_classes: int, allow_zero: bool = False) -> int:
    """``num_classes`` if it is a positive integer (or 0 where ``allow_zero``: no classifier)."""
    lowest = 0 if allow_zero else 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < lowest:
        what = "a non-negative integer (0: no classifier, pooled features)" if allow_zero else "a positive integer"
        raise UserError(f"num_classes must be {what}, got {num_classes!r}")
    return num_classes


def fresh_class_layer(old: nn.Module, num_classes: int) -> nn.Module:
    """A newly initialized layer like ``old`` (an ``nn.Linear`` or an ``nn.Conv2d`` class
    map) but with ``num_classes`` outputs, on ``old``'s device and with its dtype."""
    check_num_classes(num_classes)
    if not (isinstance(old, nn.Linear) or isinstance(old, nn.Conv2d) and old.groups == 1):
        raise TypeError(f"cannot build a fresh class layer like {type(old).__name__}; "
                        "expected nn.Linear or an ungrouped nn.Conv2d")
    like = dict(bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, **like)
    return nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding, old.dilation,
                     padding_mode=old.padding_mode, **like)


class CnnModel(nn.Module):
    """Base class of cnnlab's classifiers.

    Subclasses set ``num_classes``, ``num_features`` and ``in_chans`` in ``__init__``
    and implement ``forward_features``. ``min_input_size`` (smallest H and W that work)
    is set by the registry from the model's :class:`~cnnlab.registry.ModelInfo`; a
    subclass may set it itself.

    The head has defaults a subclass overrides where its head differs:

    * ``classifier_name``: the submodule that maps features to class scores, as an
      attribute name or a dotted path (``"classifier.1"``);
    * ``get_classifier()`` returns it; ``new_classifier(n)`` builds its replacement
      (by default the same kind of layer with ``n`` outputs, see :func:`fresh_class_layer`);
      ``reset_classifier(n)`` checks ``n``, swaps the new layer in and sets ``num_classes``
      (models with auxiliary classifiers extend it to reset those too);
    * ``forward_head`` runs the submodule ``global_pool``, flattens, applies the
      submodule ``head_drop`` where the model has one, and returns those features
      (``pre_logits``) or the classifier's output.
    """

    num_classes: int
    num_features: int
    in_chans: int
    min_input_size: int = 1
    aux_loss_weights: tuple[float, ...] = ()
    classifier_name: str = "fc"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)  # N x num_features
        drop = self._modules.get("head_drop")
        if drop is not None:
            x = drop(x)
        return x if pre_logits or not self.num_classes else self.get_classifier()(x)  # N x num_classes

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def new_classifier(self, num_classes: int) -> nn.Module:
        """A freshly initialized classifier for ``num_classes`` classes, to replace the current one."""
        old = self.get_classifier()
        template = self.__dict__.get("_removed_classifier")
        if isinstance(old, nn.Identity) and template is not None:
            # removed by reset_classifier(0): rebuild the kind it replaced, where the model lives
            ref = next(self.parameters())
            layer = fresh_class_layer(template, num_classes).to_empty(device=ref.device).to(ref.dtype)
            layer.reset_parameters()
            return layer
        return fresh_class_layer(old, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """Give the model a fresh classifier for ``num_classes`` classes.

        ``num_classes=0`` removes it (an ``nn.Identity`` takes its place, as in timm):
        ``forward`` then returns the pooled features, N x ``num_features``, and the
        auxiliary heads of models that have them are not run.
        """
        check_num_classes(num_classes, allow_zero=True)
        new = nn.Identity() if num_classes == 0 else self.new_classifier(num_classes)
        old = self.get_classifier()
        if num_classes == 0 and not isinstance(old, nn.Identity):
            # kept outside the module tree (no parameters, no state_dict keys) as the
            # template of the classifier a later reset_classifier(n) builds
            self.__dict__["_removed_classifier"] = copy.deepcopy(old).to("meta")
        self.set_submodule(self.classifier_name, new)
        self.num_classes = num_classes

    # -- inputs --------------------------------------------------------------------------
    def _input_name(self) -> str:
        return getattr(getattr(self, "model_info", None), "name", type(self).__name__)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputTypeError` for an input that is not a floating-point tensor
        of the model's dtype, :class:`InputSizeError` for one of the wrong rank, channel
        count or too small a height or width."""
        name = self._input_name()
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{name} expects a torch.Tensor of shape (N, {self.in_chans}, H, W), "
                                 f"got {type(x).__module__}.{type(x).__qualname__}".replace("builtins.", ""))
        if not x.is_floating_point():
            raise InputTypeError(f"{name} expects a floating-point tensor, got dtype {x.dtype}; convert it "
                                 "with x.float() (and scale images to [0, 1] or normalize them)")
        weight = next(self.parameters(), None)
        if (weight is not None and x.dtype != weight.dtype and weight.is_floating_point()
                and not torch.is_autocast_enabled(x.device.type)):
            raise InputTypeError(f"{name} has {weight.dtype} parameters but got a {x.dtype} input; convert "
                                 f"the input (x.to({weight.dtype})) or the model (model.to({x.dtype}))")
        if x.dim() != 4:
            raise InputSizeError(f"{name} expects a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise InputSizeError(
                f"{name} expects {self.in_chans} input channel(s), got {x.shape[1]} (input shape "
                f"{tuple(x.shape)}); build it with in_chans={x.shape[1]} to change that"
            )
        h, w = x.shape[-2], x.shape[-1]
        smallest = self.min_input_size
        if h < smallest or w < smallest:
            side = "height" if h < smallest else "width"
            raise InputSizeError(
                f"{name} needs inputs of at least {smallest}x{smallest} pixels, got {h}x{w} "
                f"(the {side} is too small)"
            )

    # -- feature maps per stage (timm's features_only / forward_intermediates) ---------
    @property
    def feature_info(self) -> "FeatureInfo":
        """One entry per reduction level (stride 2, 4, 8, ...; LeNet and CIFAR nets start
        at 1): the module whose output is the last feature map at that level, its
        channels and its nominal reduction. Found once per model by a shape-only pass on
        the meta device (see :func:`_find_feature_info`)."""
        info = self.__dict__.get("_feature_info")
        if info is None:
            info = _find_feature_info(self)
            self.__dict__["_feature_info"] = info
        return info

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ):
        """The feature maps of the stages in ``feature_info`` (timm's signature).

        ``indices``: ``None`` for all stages, an int ``n`` for the last ``n``, or a
        sequence of stage indices (negative ones count from the end). Returns
        ``(final_features, [maps])``, or the list alone with ``intermediates_only``
        (which, like ``stop_early``, stops the forward pass after the last map asked
        for; with ``stop_early`` the first element is then that last map).
        """
        self.check_input(x)
        info = self.feature_info
        take = _select_indices(indices, len(info))
        wanted = {info[i]["module"]: i for i in take}
        maps: dict[int, torch.Tensor] = {}
        last = max(take) if take else -1
        stop = stop_early or intermediates_only

        def hook(module, args, output, index):
            maps[index] = output
            if stop and index == last:
                raise _StopForward

        handles = [self.get_submodule(m).register_forward_hook(
            lambda mod, a, out, i=i: hook(mod, a, out, i)) for m, i in wanted.items()]
        final = None
        try:
            if take or not intermediates_only:
                final = self.forward_features(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        out = [maps[i] for i in take]
        if final is None and take and not intermediates_only:
            final = maps[last]  # stopped early
        return out if intermediates_only else (final, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------------------
# Feature maps per stage
# ----------------------------------------------------------------------------------------

class _StopForward(Exception):
    """Raised by a forward hook to end a pass once the last feature map asked for is taken."""


class FeatureInfo(list):
    """``feature_info``: a list of ``{"module", "num_chs", "reduction", "index"}`` dicts,
    one per stage, with timm's accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


def _select_indices(indices, n: int) -> list[int]:
    if indices is None:
        return list(range(n))
    if isinstance(indices, bool):
        raise UserError(f"indices must be None, an int or a sequence of ints, got {indices!r}")
    if isinstance(indices, int):
        if not 0 <= indices <= n:
            raise UserError(f"indices={indices}: the model has {n} feature stages")
        return list(range(n - indices, n))
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            raise UserError(f"feature stage index {i!r} (indices / out_indices) out of range for "
                            f"{n} stages (0..{n - 1})")
        out.append(i % n)
    return sorted(set(out))


def _trace_size(model: nn.Module) -> int:
    info = getattr(model, "model_info", None)
    default = info.input_size[1] if info is not None else 224
    # At least 224, so that valid (unpadded) convolutions barely move a map's size and
    # every reduction comes out close to a power of two.
    return max(int(default), int(getattr(model, "min_input_size", 1)), 224)


def _find_feature_info(model: "CnnModel") -> FeatureInfo:
    """Which modules' outputs are the model's per-stage feature maps.

    A shape-only pass of ``forward_features`` (parameters on the meta device, eval mode,
    so auxiliary heads stay out) records the output size of every top-level child and,
    inside ``nn.Sequential`` containers that span several resolutions, of their
    children (a Sequential's children run in order, so their outputs are its flow).
    Each output gets a nominal reduction, 2 ** round(log2(input / height)); the stage
    at a reduction is the last module to produce a map at it. This is timm's rule
    ("the last feature map at each stride"), found from the model instead of written
    per family.
    """
    from torch.func import functional_call

    size = _trace_size(model)
    seen: dict[str, list] = {}  # module name -> [call count, output shape]
    order: list[str] = []
    handles = []

    def record(name):
        def hook(module, args, output):
            entry = seen.setdefault(name, [0, None])
            entry[0] += 1
            entry[1] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            if entry[0] == 1:
                order.append(name)
        return hook

    def add_hooks(prefix: str, module: nn.Module) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}{child_name}"
            handles.append(child.register_forward_hook(record(name)))
            if isinstance(child, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
                add_hooks(name + ".", child)

    add_hooks("", model)
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())  # non-persistent ones too (not in the state_dict)
    state = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.empty(1, model.in_chans, size, size, device="meta")
            functional_call(_FeaturesOf(model), {f"model.{k}": v for k, v in state.items()}, (x,))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return FeatureInfo(_stages_from_trace(model, seen, order, size))


class _FeaturesOf(nn.Module):
    """``forward`` = the wrapped model's ``forward_features`` (for ``functional_call``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _is_flow_unit(model: nn.Module, name: str) -> bool:
    """A top-level child, or a member of a (nested) ModuleList / ModuleDict at the top level."""
    parts = name.split(".")
    parent = model
    for part in parts[:-1]:
        parent = parent._modules[part]
        if not isinstance(parent, (nn.ModuleList, nn.ModuleDict)):
            return False
    return True


def _level(shape, size: int) -> int | None:
    if shape is None or len(shape) != 4 or shape[-2] < 1:
        return None
    return round(math.log2(size / shape[-2]))


def _stages_from_trace(model: nn.Module, seen: dict, order: list[str], size: int) -> list[dict]:
    def leaves(prefix: str, module: nn.Module) -> list[str]:
        """Modules in flow order, expanding Sequentials whose children span several levels."""
        out = []
        names = [f"{prefix}{n}" for n, _ in module.named_children()]
        if not prefix:  # top level: the order in which forward_features ran them, with the
            # members of a ModuleList / ModuleDict (never run as a whole) in their place
            names = [n for n in order if _is_flow_unit(model, n)]
        for name in names:
            if name not in seen or seen[name][0] != 1:
                continue  # not run by forward_features, or shared (run more than once)
            child = model.get_submodule(name)
            if isinstance(child, nn.Sequential):
                inner = [f"{name}.{n}" for n, _ in child.named_children()]
                levels = {_level(seen[n][1], size) for n in inner if n in seen}
                if len(levels - {None}) > 1:
                    out += leaves(name + ".", child)
                    continue
            out.append(name)
        return out

    stages: dict[int, dict] = {}
    top = -1
    for name in leaves("", model):
        shape = seen[name][1]
        level = _level(shape, size)
        if level is None or level < top:
            continue
        top = level
        stages[level] = {"module": name, "num_chs": shape[1], "reduction": 2 ** level}
    return [dict(info, index=i) for i, info in enumerate(stages[k] for k in sorted(stages))]


class FeatureNet(nn.Module):
    """A model's per-stage feature maps as the output: ``create_model(name, features_only=True)``.

    ``forward(x)`` returns the list of maps of the stages in ``out_indices`` (all by
    default), ``feature_info`` describes them. The network is ``self.model`` (its
    classifier removed), so its checkpoints load with ``net.model.load_state_dict(sd,
    strict=False)``.
    """

    def __init__(self, model: CnnModel, out_indices: int | Sequence[int] | None = None):
        super().__init__()
        model.reset_classifier(0)
        self.model = model
        full = model.feature_info
        self.out_indices = _select_indices(out_indices, len(full))
        self.feature_info = FeatureInfo(full[i] for i in self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, intermediates_only=True)
