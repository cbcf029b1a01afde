"""The settings of one training run (everything that is not the recipe)."""
from __future__ import annotations

import dataclasses
import os
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
    threads: int | None = None  # CPU threads for PyTorch (None: chosen from the machine and the model)
    split_seed: int = 0  # seeds the validation hold-out (fixed across --seed, so runs share one split)
    optimizer_factory: Any = None  # Python only: f(param_groups) -> torch.optim.Optimizer (not saved)
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
    layer_stats_every: int = 0  # record per-layer statistics every N steps in layers.jsonl (0: off)

    def validate(self) -> "TrainConfig":
        from cnnlab.train.trackers import TRACKERS

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.progress not in PROGRESS:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, got {self.progress!r}")
        if isinstance(self.trackers, str):
            raise ValueError(f"trackers must be a list of names, e.g. [{self.trackers!r}], "
                             f"not the string {self.trackers!r}")
        bad = [t for t in self.trackers if t not in TRACKERS]
        if bad:
            raise ValueError(f"unknown tracker(s) {', '.join(bad)}; choose from {', '.join(TRACKERS)}")
        if not isinstance(self.split_seed, int) or isinstance(self.split_seed, bool):
            raise ValueError(f"split_seed must be an integer, got {self.split_seed!r}")
        if self.optimizer_factory is not None and not callable(self.optimizer_factory):
            raise ValueError("optimizer_factory must be a callable f(param_groups) -> torch.optim.Optimizer")
        if self.freeze_backbone and not self.pretrained:
            raise ValueError("freeze_backbone needs pretrained weights (--pretrained): a random backbone is no backbone")
        for name in ("image_size", "train_samples", "test_samples", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.layer_stats_every, int) or isinstance(self.layer_stats_every, bool) \
                or self.layer_stats_every < 0:
            raise ValueError(f"layer_stats_every must be an integer >= 0 (0: off), got {self.layer_stats_every!r}")
        cpus = os.cpu_count() or 1
        if self.threads is not None and self.threads > 4 * cpus:
            raise ValueError(f"threads must be at most {4 * cpus} on this machine ({cpus} logical CPUs), "
                             f"got {self.threads}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(dataclasses.replace(self, optimizer_factory=None))
        d.pop("optimizer_factory")
        d["trackers"] = list(self.trackers)
        if self.optimizer_factory is not None:
            d["optimizer_factory"] = getattr(self.optimizer_factory, "__qualname__", repr(self.optimizer_factory))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known and k != "optimizer_factory"}
        kwargs["trackers"] = tuple(kwargs.get("trackers", ()))
        return cls(**kwargs)
