"""Architecture files: a searched architecture as JSON that the rest of cnnlab accepts.

``cnnlab search export RUN`` writes the best architecture of a search as
``<name>.json``; wherever a model name goes, that path works too:

    cnnlab summary best.json
    cnnlab train best.json --dataset digits --recipe fast --out runs/best
    cnnlab.create_model("best.json", num_classes=10)

The file holds the space (and its arguments), the tokens, the decoded architecture (for a
``nasnet`` search: the normal and reduction genotypes, as blocks of
``[input, op, input, op, combine]``), the input size and class count of the dataset it
was searched on, and where it came from. Nothing in it is executed: the space named in
it must be one of cnnlab's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "export_architecture", "read_architecture", "build_architecture", "architecture_info",
           "is_architecture_file"]

FORMAT = "cnnlab-architecture"

_PAPERS = {
    "layers": ("Neural Architecture Search with Reinforcement Learning", "Barret Zoph, Quoc V. Le", 2016, "1611.01578"),
    "nasnet": ("Learning Transferable Architectures for Scalable Image Recognition",
               "Barret Zoph, Vijay Vasudevan, Jonathon Shlens, Quoc V. Le", 2017, "1707.07012"),
}


def is_architecture_file(name: Any) -> bool:
    return isinstance(name, (str, Path)) and str(name).endswith(".json") and Path(name).is_file()


def export_architecture(path: str | Path, *, space, tokens, dataset: str, source: dict[str, Any] | None = None) -> Path:
    """Write ``tokens`` of ``space`` as an architecture file at ``path``."""
    from cnnlab import data as cdata

    info = cdata.dataset_info(dataset)
    record = {
        "format": FORMAT, "version": 1,
        "space": space.name, "space_args": space.args, "tokens": [int(t) for t in tokens],
        "arch": space.decode(tokens),
        "input_size": [info.channels, *info.image_size], "num_classes": info.num_classes,
        "dataset": dataset, "dataset_kind": info.kind, "source": source or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_architecture(path: str | Path) -> dict[str, Any]:
    """The file's record, checked: the format, a known space, tokens that fit it."""
    from cnnlab.search.spaces import get_space

    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not an architecture file: not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not an architecture file (no \"format\": \"{FORMAT}\"); "
                         "make one with `cnnlab search export RUN`")
    space = get_space(record.get("space", "?"), **record.get("space_args", {}))
    tokens = space.check_tokens(record.get("tokens", []))
    if "arch" in record and space.encode(record["arch"]) != tokens:
        raise ValueError(f"{path}: 'arch' and 'tokens' describe different architectures")
    return {**record, "tokens": tokens, "_space": space}


def architecture_info(path: str | Path):
    """A :class:`~cnnlab.registry.ModelInfo` for the architecture in ``path``."""
    from cnnlab.registry import ModelInfo, Paper

    rec = read_architecture(path)
    title, authors, year, arxiv = _PAPERS["nasnet" if rec["space"] == "nasnet" else "layers"]
    return ModelInfo(name=str(path), family=f"search-{rec['space']}", paper=Paper(title, authors, year, arxiv),
                     input_size=tuple(rec["input_size"]), min_input_size=1,
                     dataset=rec.get("dataset_kind", "cifar"), num_classes=int(rec["num_classes"]),
                     description=f"searched {rec['space']} architecture ({Path(path).name})")


def build_architecture(path: str | Path, *, num_classes: int | None = None, in_chans: int | None = None, **kwargs):
    """The network of the architecture in ``path`` (``create_model(path)`` calls this)."""
    if kwargs:
        raise TypeError(f"{path}: unexpected argument(s) {', '.join(kwargs)}; an architecture file accepts "
                        "num_classes and in_chans")
    rec = read_architecture(path)
    info = architecture_info(path)
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{path}: {key} must be a positive integer, got {value!r}")
    model = rec["_space"].build(rec["tokens"], num_classes=num_classes or info.num_classes,
                                in_chans=in_chans or info.input_size[0])
    model.model_info = info
    model.min_input_size = info.min_input_size
    return model
