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
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["aux_loss_weights"] = list(self.aux_loss_weights)
        d["paper"]["url"] = self.paper.url
        return d


class UnknownModelError(ValueError):
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
        )

        @functools.wraps(builder)
        def build(**kwargs: Any) -> Any:
            _check_common_kwargs(model_name, kwargs)
            kwargs.setdefault("num_classes", info.num_classes)
            model = builder(**kwargs)
            model.model_info = info
            model.min_input_size = info.min_input_size
            if info.aux_loss_weights and not getattr(model, "aux_loss_weights", ()):
                model.aux_loss_weights = info.aux_loss_weights
            return model

        build.model_info = info  # type: ignore[attr-defined]
        _BUILDERS[model_name] = build
        _INFOS[model_name] = info
        return build

    return decorate


def _check_common_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    for key in ("num_classes", "in_chans"):
        if key in kwargs:
            value = kwargs[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")


def _ensure_loaded() -> None:
    # Importing the models package runs every family's @register_model.
    import cnnlab.models  # noqa: F401


def _unknown(name: str) -> UnknownModelError:
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
    params = inspect.signature(builder.__wrapped__).parameters  # type: ignore[attr-defined]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params]
    if unknown and not takes_any:
        accepted = ", ".join(sorted(params))
        raise TypeError(f"{name}: unexpected argument(s) {', '.join(unknown)}; it accepts: {accepted}")
    if pretrained is not False and pretrained is not None:
        from cnnlab.weights.load import build_pretrained

        return build_pretrained(name, pretrained, builder, kwargs)
    return builder(**kwargs)


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered model names matching the shell-style ``pattern``, sorted."""
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

