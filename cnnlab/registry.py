"""The model registry: every architecture is a registered, keyword-only builder.

    >>> import cnnlab
    >>> model = cnnlab.create_model("resnet50", num_classes=10)
    >>> cnnlab.list_models("vgg*")
    >>> cnnlab.model_info("lenet5").paper.year

A builder is registered with :func:`register_model`, which attaches a
:class:`ModelInfo` (paper, input sizes, published figures) to it. The registry
checks the common keyword arguments (``num_classes``, ``in_chans``) before the
builder runs and stamps the info onto every model it builds, so the model can
reject an input smaller than it can take with a message that says so.

The registry knows nothing of the model families: a package that defines models
names its module with :func:`add_model_source`, and the registry imports it the
first time a model is looked up (``cnnlab`` adds ``cnnlab.models``). ``import
cnnlab.registry`` therefore stays free of torch and of every model module.

timm's conventions apply to every registered model: ``num_classes=0`` builds it
without a classifier (``forward`` returns pooled features), ``features_only=True``
returns a :class:`~cnnlab.models.base.FeatureNet` of its per-stage feature maps
(``out_indices`` picks the stages), and an argument the builder does not take is an
:class:`~cnnlab.errors.UnknownArgumentError` naming it and listing the accepted ones.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
import re
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from cnnlab.errors import UnknownArgumentError, UserError

__all__ = [
    "Paper",
    "Published",
    "ModelInfo",
    "UnknownModelError",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "is_model",
    "add_model_source",
    "pretrained_cfg",
]

DATASET_KINDS = ("mnist", "cifar", "imagenet")


@dataclass(frozen=True)
class Paper:
    """Where an architecture was published."""

    title: str
    authors: str
    year: int
    arxiv: str | None = None  # arXiv id, e.g. "1512.03385"
    venue: str | None = None  # e.g. "Proc. IEEE 1998", "NeurIPS 2012"

    @property
    def url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None

    def cite(self) -> str:
        where = f"arXiv:{self.arxiv}" if self.arxiv else (self.venue or "")
        return f"{self.authors} ({self.year}). {self.title}. {where}".strip()


@dataclass(frozen=True)
class Published:
    """Figures published for an architecture, and where they come from.

    ``params_exact`` says that ``params`` is an exact count (fixed by the paper or by
    the reference implementation) that the built model must reproduce; otherwise it
    is a rounded figure ("~1.7M") that the model must come within 2% of.
    Accuracies are percentages on ``dataset``: ImageNet figures as top-1/top-5
    accuracy, CIFAR and MNIST figures as test error.
    """

    params: int | None = None
    params_exact: bool = False
    macs: int | None = None
    top1: float | None = None
    top5: float | None = None
    error: float | None = None
    dataset: str | None = None
    source: str = ""

    def accuracy_text(self) -> str:
        if self.top1 is not None:
            text = f"top-1 {self.top1:.1f}%"
            if self.top5 is not None:
                text += f" / top-5 {self.top5:.1f}%"
        elif self.top5 is not None:
            text = f"top-5 {self.top5:.1f}%"
        elif self.error is not None:
            text = f"error {self.error:.2f}%"
        else:
            return ""
        return f"{text} ({self.dataset})" if self.dataset else text


@dataclass(frozen=True)
class ModelInfo:
    """What cnnlab knows about one registered architecture."""

    name: str
    family: str
    paper: Paper
    input_size: tuple[int, int, int]  # default (C, H, W)
    min_input_size: int  # smallest H = W that runs forward
    dataset: str  # "mnist" | "cifar" | "imagenet"
    num_classes: int
    published: Published = field(default_factory=Published)
    aux_loss_weights: tuple[float, ...] = ()
    layout: str = "paper"  # "paper", "torchvision" or "timm": whose state_dict keys
    description: str = ""
    # Preprocessing (mean, std, crop_pct, interpolation) where it differs from the
    # dataset kind's default; see pretrained_cfg.
    preprocessing: tuple[tuple[str, Any], ...] = ()

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg``: input size, mean/std, crop_pct, interpolation,
        first conv and classifier module names (see :func:`pretrained_cfg`)."""
        return pretrained_cfg(self.name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocessing"] = dict(self.preprocessing)
        d["input_size"] = list(self.input_size)
        d["aux_loss_weights"] = list(self.aux_loss_weights)
        d["paper"]["url"] = self.paper.url
        return d


class UnknownModelError(UserError):
    """``create_model`` or ``model_info`` was given a name that is not registered."""


_BUILDERS: dict[str, Callable[..., Any]] = {}
_INFOS: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: Paper,
    input_size: tuple[int, int, int],
    min_input_size: int,
    dataset: str,
    num_classes: int | None = None,
    published: Published | None = None,
    aux_loss_weights: tuple[float, ...] = (),
    layout: str = "paper",
    description: str = "",
    name: str | None = None,
    preprocessing: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers a model builder under its function name.

    The builder must take keyword-only arguments, among them ``num_classes`` and
    ``in_chans``. The returned wrapper validates those, calls the builder, and sets
    ``model.model_info`` and ``model.min_input_size`` on the result.
    """
    if dataset not in DATASET_KINDS:
        raise ValueError(f"dataset must be one of {DATASET_KINDS}, got {dataset!r}")
    default_classes = num_classes if num_classes is not None else {"mnist": 10, "cifar": 10, "imagenet": 1000}[dataset]

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        model_name = name or builder.__name__
        if model_name in _BUILDERS:
            raise ValueError(f"model {model_name!r} is registered twice")
        sig = inspect.signature(builder)
        positional = [
            p.name
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if positional:
            raise TypeError(f"builder {model_name!r} must take keyword-only arguments, not {positional}")
        info = ModelInfo(
            name=model_name,
            family=family,
            paper=paper,
            input_size=tuple(input_size),
            min_input_size=min_input_size,
            dataset=dataset,
            num_classes=default_classes,
            published=published or Published(),
            aux_loss_weights=tuple(aux_loss_weights),
            layout=layout,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            preprocessing=tuple(sorted((preprocessing or {}).items())),
        )
        unknown_keys = set(preprocessing or {}) - set(_PREPROCESSING_KEYS)
        if unknown_keys:
            raise ValueError(f"{model_name}: unknown preprocessing keys {sorted(unknown_keys)}")

        @functools.wraps(builder)
        def build(**kwargs: Any) -> Any:
            features_only = kwargs.pop("features_only", False)
            out_indices = kwargs.pop("out_indices", None)
            _check_common_kwargs(model_name, kwargs)
            no_classifier = kwargs.get("num_classes") == 0
            if no_classifier or features_only:
                kwargs["num_classes"] = info.num_classes  # built whole, then the classifier removed
            kwargs.setdefault("num_classes", info.num_classes)
            model = _call_builder(model_name, builder, kwargs)
            model.model_info = info
            model.min_input_size = info.min_input_size
            if info.aux_loss_weights and not getattr(model, "aux_loss_weights", ()):
                model.aux_loss_weights = info.aux_loss_weights
            model.pretrained_cfg = pretrained_cfg(model_name, model)
            if no_classifier:
                model.reset_classifier(0)
            if features_only:
                from cnnlab.models.base import FeatureNet

                return FeatureNet(model, out_indices)
            if out_indices is not None:
                raise UserError(f"{model_name}: out_indices only applies with features_only=True")
            return model

        build.model_info = info  # type: ignore[attr-defined]
        _BUILDERS[model_name] = build
        _INFOS[model_name] = info
        return build

    return decorate


def _check_common_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    for key in ("drop_rate", "drop_path_rate"):  # the same names and checks in every family
        value = kwargs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0.0 <= value < 1.0):
            raise UserError(f"{name}: {key} must be a number in [0, 1), got {value!r}")
    for key in ("num_classes", "in_chans"):
        if key in kwargs:
            value = kwargs[key]
            lowest = 0 if key == "num_classes" else 1  # num_classes=0: no classifier (timm)
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                what = "a non-negative integer (0: pooled features)" if lowest == 0 else "a positive integer"
                raise UserError(f"{name}: {key} must be {what}, got {value!r}")


# Arguments the registry itself takes for every model (timm's names).
_REGISTRY_KWARGS = ("features_only", "out_indices")


def accepted_arguments(name: str) -> list[str]:
    """Every keyword argument ``create_model(name, ...)`` accepts, sorted."""
    _ensure_loaded()
    if name not in _BUILDERS:
        raise _unknown(name)
    accepted = _accepted(_BUILDERS[name].__wrapped__)  # type: ignore[attr-defined]
    if accepted is None:
        raise UserError(f"{name}: its builder passes arguments on to a class it does not name")
    return sorted(accepted)


@functools.lru_cache(maxsize=None)
def _accepted(builder: Callable[..., Any]) -> frozenset[str] | None:
    """The builder's keyword arguments; where it passes ``**kwargs`` on to the model's
    class (its return annotation), that class's keyword arguments too. ``None`` when
    that class cannot be known (the builder then checks its arguments itself)."""
    params = inspect.signature(builder).parameters
    names = {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        try:
            cls = typing.get_type_hints(builder).get("return")
        except Exception:  # an annotation that does not resolve: the builder will have to say
            cls = None
        if not isinstance(cls, type):
            return None
        init = inspect.signature(cls.__init__).parameters
        names |= {k for k, p in init.items()
                  if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return frozenset(names | set(_REGISTRY_KWARGS))


def _call_builder(name: str, builder: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return builder(**kwargs)
    except TypeError as exc:
        # An argument the builder sets itself (resnet50's layers): say so, in one line.
        fixed = re.search(r"got multiple values for (?:keyword )?argument '(\w+)'", str(exc))
        if fixed and fixed.group(1) in kwargs:
            raise UserError(f"{name}: {fixed.group(1)!r} is fixed by this model and cannot be passed; "
                            "build the model's class directly to choose it") from exc
        raise


_SOURCES: list[str] = []  # modules that register models, imported on first lookup
_LOADED: set[str] = set()


def add_model_source(module: str) -> None:
    """Name a module whose import registers models (``cnnlab`` adds ``"cnnlab.models"``).

    It is imported the first time a model is looked up, not now, so registering a
    source costs nothing and the registry never imports the packages that use it.
    """
    if module not in _SOURCES:
        _SOURCES.append(module)


def _ensure_loaded() -> None:
    for module in list(_SOURCES):
        if module not in _LOADED:
            _LOADED.add(module)  # first, so that a lookup during the import does not recurse
            try:
                importlib.import_module(module)
            except BaseException:
                _LOADED.discard(module)
                raise


# timm's pretrained_cfg, by dataset kind; a model's ``preprocessing`` overrides these.
_PREPROCESSING_KEYS = ("mean", "std", "crop_pct", "interpolation")
_DEFAULT_PREPROCESSING = {
    # ImageNet statistics as torchvision's weights use them; resize by 1/0.875 and crop.
    "imagenet": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                 "crop_pct": 0.875, "interpolation": "bilinear"},
    # CIFAR-10 training-set statistics; no crop at test time.
    "cifar": {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616),
              "crop_pct": 1.0, "interpolation": "bilinear"},
    # MNIST training-set statistics.
    "mnist": {"mean": (0.1307,), "std": (0.3081,), "crop_pct": 1.0, "interpolation": "bilinear"},
}
_CFG_CACHE: dict[str, dict[str, Any]] = {}


def pretrained_cfg(name: str, model: Any = None) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` record for the registered model ``name``.

    Keys: ``input_size`` (C, H, W), ``min_input_size``, ``mean``, ``std``,
    ``crop_pct`` (test-time centre crop: resize to size / crop_pct, then crop),
    ``interpolation``, ``first_conv`` and ``classifier`` (module names, for adapting
    the input channels or the classes of a checkpoint), ``num_classes`` and
    ``layout``. ``model`` (an instance built with default arguments) saves building
    one on the meta device to find the module names.
    """
    if name not in _CFG_CACHE:
        info = model_info(name)
        if model is None:
            import torch

            with torch.device("meta"):
                model = _BUILDERS[name]()
        import torch.nn as nn

        first_conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
        cfg = {"input_size": tuple(info.input_size), "min_input_size": info.min_input_size}
        cfg.update(_DEFAULT_PREPROCESSING[info.dataset])
        cfg.update(dict(info.preprocessing))
        cfg.update(first_conv=first_conv, classifier=getattr(model, "classifier_name", None),
                   num_classes=info.num_classes, layout=info.layout)
        _CFG_CACHE[name] = cfg
    cfg = dict(_CFG_CACHE[name])
    if model is not None and hasattr(model, "in_chans"):
        cfg["input_size"] = (model.in_chans, *cfg["input_size"][1:])
    return cfg


def _unknown(name: str) -> UnknownModelError:
    if hasattr(name, "__fspath__"):
        name = str(name)
    if not isinstance(name, str):
        return UnknownModelError(f"a model is named by a string (a registered name, or the path of an architecture "
                                 f".json file), got {name!r} ({type(name).__name__})")
    import os

    if os.path.exists(name) and not name.endswith(".json"):
        return UnknownModelError(f"unknown model {name!r}: that is a file or folder, not a model name; give a "
                                 "registered name (`cnnlab models`) or an architecture .json file")
    if name.endswith(".json"):
        return UnknownModelError(f"unknown model {name!r}: no architecture file there (the .json file "
                                 "`cnnlab search export` writes)")
    close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownModelError(
        f"unknown model {name!r}.{hint} `cnnlab models` lists all {len(_BUILDERS)} registered models."
    )


def _architecture_file(name: Any) -> bool:
    # A searched architecture saved by `cnnlab search export` (a .json path) works wherever a name does.
    from cnnlab.search.export import is_architecture_file

    return is_architecture_file(name)


def is_model(name: str) -> bool:
    _ensure_loaded()
    return name in _BUILDERS or _architecture_file(name)


def create_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> Any:
    """Build the registered model ``name``; keyword arguments go to its builder.

    ``pretrained=True`` (or a tag such as ``"IMAGENET1K_V1"``) loads the published
    weights (``cnnlab weights`` lists them; see :mod:`cnnlab.weights`); with another
    ``num_classes`` the classifier is replaced by a new one.
    """
    _ensure_loaded()
    if name not in _BUILDERS and _architecture_file(name):
        from cnnlab.search.export import build_architecture

        return build_architecture(name, **kwargs)
    if name not in _BUILDERS:
        raise _unknown(name)
    builder = _BUILDERS[name]
    accepted = _accepted(builder.__wrapped__)  # type: ignore[attr-defined]
    unknown = [k for k in kwargs if accepted is not None and k not in accepted]
    if unknown:
        raise UnknownArgumentError(name, unknown, accepted)
    if pretrained is not False and pretrained is not None:
        from cnnlab.weights.load import build_pretrained

        features_only = kwargs.pop("features_only", False)
        out_indices = kwargs.pop("out_indices", None)
        model = build_pretrained(name, pretrained, builder, kwargs)
        if features_only:
            from cnnlab.models.base import FeatureNet

            return FeatureNet(model, out_indices)
        if out_indices is not None:
            raise UserError(f"{name}: out_indices only applies with features_only=True")
        return model
    return builder(**kwargs)


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered model names matching the shell-style ``pattern``, sorted."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a shell-style string such as 'resnet*', got {pattern!r}")
    _ensure_loaded()
    names = [n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern)]
    if family is not None:
        names = [n for n in names if _INFOS[n].family == family]
    return sorted(names)


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model."""
    _ensure_loaded()
    if name not in _INFOS and _architecture_file(name):
        from cnnlab.search.export import architecture_info

        return architecture_info(name)
    if name not in _INFOS:
        raise _unknown(name)
    return _INFOS[name]

