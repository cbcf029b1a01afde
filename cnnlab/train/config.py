"""The settings of one training run (everything that is not the recipe)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig", "PRECISIONS", "DEVICES", "PROGRESS"]

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
PROGRESS = ("auto", "bar", "lines", "none")


@dataclass
class TrainConfig:
    """What to train, where, and how to run it.

    ``recipe`` names the recipe (``None``: the model's default, see
    :func:`cnnlab.train.recipes.recipe_for_model`); ``overrides`` changes its fields.
    """

    model: str
    dataset: str | None = None  # None: the model's default (digits / cifar10 / imagefolder)
    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    out: str | None = None  # run directory; None: runs/<model>-<dataset>-<time>
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    trackers: tuple[str, ...] = ()  # besides jsonl: "tensorboard", "wandb"
    progress: str = "auto"  # bar on a terminal, one line per epoch otherwise
    threads: int | None = None  # CPU threads for PyTorch (None: PyTorch's default)
    # data
    data_dir: str | None = None
    data_root: str | None = None  # imagefolder: the folder of class subfolders
    data_options: dict[str, Any] = field(default_factory=dict)  # more load_dataset options
    download: bool = True
    image_size: int | None = None  # train at this H = W instead of the model's input size
    train_samples: int | None = None  # a seeded random subset of the training set
    test_samples: int | None = None
    num_workers: int | None = None
    # published weights to start from (True: the model's DEFAULT tag; or a tag); see cnnlab.weights
    pretrained: bool | str | None = None
    freeze_backbone: bool = False  # train only the classifier (needs pretrained)

    def validate(self) -> "TrainConfig":
        from cnnlab.train.trackers import TRACKERS

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.progress not in PROGRESS:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, got {self.progress!r}")
        bad = [t for t in self.trackers if t not in TRACKERS]
        if bad:
            raise ValueError(f"unknown tracker(s) {', '.join(bad)}; choose from {', '.join(TRACKERS)}")
        if self.freeze_backbone and not self.pretrained:
            raise ValueError("freeze_backbone needs pretrained weights (--pretrained): a random backbone is no backbone")
        for name in ("image_size", "train_samples", "test_samples", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trackers"] = list(self.trackers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["trackers"] = tuple(kwargs.get("trackers", ()))
        return cls(**kwargs)
