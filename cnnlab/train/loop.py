"""The training loop, top to bottom.

    results = fit("lenet5")                          # digits, the LeNet-5 recipe
    results = fit("resnet20", "cifar10", epochs=10)  # any recipe field as a keyword
    results = fit(my_module, "shapes", recipe="fast")

``train(config)`` runs one :class:`~cnnlab.train.config.TrainConfig`; it is what
``cnnlab train`` calls. The story: join the process group (under torchrun), open the
run directory, load the data and hold out a validation split, build the model and
choose the CPU thread count, build optimizer/schedule/scaler/weight average, resume
if asked, then for each epoch train, validate, log, checkpoint (``best.pt`` by
validation top-1); finally evaluate the test set once and write ``results.json``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import glob
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.train import distributed, env, optim
from cnnlab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnlab.train.config import TrainConfig
from cnnlab.train.recipes import Recipe, default_dataset, get_recipe, recipe_for_model, recipe_note
from cnnlab.train.schedule import LRSchedule
from cnnlab.train.trackers import make_trackers

__all__ = ["fit", "train", "evaluate", "TrainingDiverged", "loss_fn", "resolve_device", "autocast", "make_optimizer",
           "choose_threads"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped, the last good checkpoint is kept."""


# -- small pieces the story uses ------------------------------------------------------------


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine; use --device cpu or auto")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def autocast(device: torch.device, precision: str):
    """Mixed-precision context: bf16 or fp16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def loss_fn(output: Any, target: torch.Tensor, *, label_smoothing: float, aux_weights: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the logits plus the weighted auxiliary losses; returns (loss, logits)."""
    aux: tuple[torch.Tensor, ...] = ()
    if isinstance(output, tuple) and hasattr(output, "logits"):  # AuxOutput(logits, aux)
        output, aux = output.logits, tuple(output.aux)
    loss = F.cross_entropy(output.float(), target, label_smoothing=label_smoothing)
    for weight, logits in zip(aux_weights, aux):
        loss = loss + weight * F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    return loss, output


make_optimizer = optim.build_optimizer  # the recipe's torch.optim optimizer over a model (the older name)


def _topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...]) -> list[torch.Tensor]:
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices  # N x maxk
    hit = pred.eq(target[:, None])
    return [hit[:, : min(k, maxk)].any(dim=1).sum() for k in ks]


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, device: torch.device, precision: str = "fp32",
             channels_last: bool = False, dist_info: distributed.DistInfo | None = None) -> dict[str, float]:
    """Test loss, top-1 and top-5 (fractions) of ``model`` over ``loader``, summed over ranks."""
    dist_info = dist_info or distributed.DistInfo()
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for x, y in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        c1, c5 = _topk_correct(logits, y, (1, 5))
        top1 += c1
        top5 += c5
        count += y.shape[0]
    model.train(was_training)
    loss_sum, c1, c5, n = distributed.all_sum([loss_sum.item(), top1.item(), top5.item(), count], dist_info, device)
    if n == 0:
        raise ValueError("the test set is empty")
    return {"loss": loss_sum / n, "top1": c1 / n, "top5": c5 / n, "samples": int(n)}


def _subset(ds, n: int | None, seed: int):
    if n is None or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].sort().values
    return ds.subset(idx.tolist())


def _run_label(model: str) -> str:
    """A model's name as a folder name: an architecture file's stem, not its path."""
    return Path(model).stem if model.endswith(".json") else model


def _default_out(model: str, dataset: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{_run_label(model)}-{dataset}-{stamp}"


def _latest_run(model: str, dataset: str) -> Path:
    runs = sorted(glob.glob(os.path.join("runs", f"{glob.escape(_run_label(model))}-{dataset}-*")))
    if not runs:
        raise FileNotFoundError(f"--resume: no run of {model} on {dataset} under runs/; give the run folder with --out")
    return Path(runs[-1])


class _Progress:
    """A tqdm bar on a terminal (rank 0), one printed line per epoch otherwise."""

    def __init__(self, mode: str, enabled: bool) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode if enabled else "none"
        self.bar = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, dynamic_ncols=True)

    def update(self, n: int, loss: float, acc: float, ips: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * acc:.2f}%", img_s=f"{ips:.0f}", refresh=False)

    def end_epoch(self, line: str) -> None:
        if self.bar is not None:
            self.bar.refresh()  # the final loss / accuracy / throughput, however short the epoch
            self.bar.close()
            self.bar = None
        if self.mode != "none":
            print(line, flush=True)


# -- the run ---------------------------------------------------------------------------------


def fit(model: str | nn.Module, dataset: str | None = None, *, recipe: str | Recipe | None = None, **options: Any) -> dict[str, Any]:
    """Train ``model`` (a registered name or an ``nn.Module``) and return the results dict.

    Keywords that are recipe fields (``epochs``, ``lr``, ``batch_size``, ``val_fraction``,
    ...) override the recipe; the others are :class:`TrainConfig` fields (``out``, ``seed``,
    ``device``...). ``optimizer`` may also be a factory ``f(param_groups) -> torch.optim.Optimizer``.
    """
    run_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    overrides = dict(options.pop("overrides", {}))
    if callable(options.get("optimizer")):
        factory = options.pop("optimizer")
        options["optimizer_factory"] = factory
        overrides["optimizer"] = "custom"
    for key in list(options):
        if key in recipe_fields:
            overrides[key] = options.pop(key)
        elif key not in run_fields:
            close = difflib.get_close_matches(key, sorted(run_fields | recipe_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"fit() got an unknown option {key!r}{hint}")
    if isinstance(recipe, Recipe):
        overrides = {**recipe.to_dict(), **overrides}
        recipe = recipe.name
    label = model if isinstance(model, str) else type(model).__name__.lower()
    cfg = TrainConfig(model=label, dataset=dataset, recipe=recipe, overrides=overrides, **options)
    return train(cfg, module=None if isinstance(model, str) else model)


def _resolve(cfg: TrainConfig, module: nn.Module | None) -> tuple[TrainConfig, Recipe]:
    """Fill in the model's default dataset and recipe and apply the overrides."""
    registered = module is None
    if cfg.dataset is None:
        if not registered:
            raise ValueError("a model given as an nn.Module needs a dataset")
        cfg = dataclasses.replace(cfg, dataset=default_dataset(cfg.model))
    if cfg.recipe is not None:
        recipe = get_recipe(cfg.recipe, **cfg.overrides)
    elif registered:
        recipe = recipe_for_model(cfg.model, **cfg.overrides)
    else:
        recipe = get_recipe("fast", **cfg.overrides)
    if recipe.flip and "flip" not in cfg.overrides and _dataset_kind(cfg.dataset) == "mnist":
        recipe = recipe.replace(flip=False)  # digits and letters are not mirror-symmetric
    if recipe.optimizer == "custom":
        if cfg.optimizer_factory is None:
            raise ValueError("this run trains with an optimizer factory passed from Python (optimizer=...); "
                             "pass the same factory again to continue it")
    else:
        optim.optimizer_class(recipe.optimizer)  # an unknown name fails here, before any data is loaded
    return dataclasses.replace(cfg, recipe=recipe.name), recipe


def _dataset_kind(name: str) -> str:
    from cnnlab import data as cdata

    return cdata.dataset_info(name).kind


def _resume_config(cfg: TrainConfig, stored: dict[str, Any]) -> TrainConfig:
    """The stored run's settings; only ``epochs`` and how-to-run settings may change."""
    old = TrainConfig.from_dict(stored)
    if cfg.model != old.model:
        raise ValueError(f"--resume: the run in {cfg.out} trains {old.model}, not {cfg.model}")
    for key in ("dataset", "recipe"):
        mine = getattr(cfg, key)
        if mine is not None and mine != getattr(old, key):
            raise ValueError(f"--resume: the run in {cfg.out} uses {key} {getattr(old, key)!r}, not {mine!r}")
    overrides = dict(old.overrides)
    for key, value in cfg.overrides.items():
        if key == "epochs":
            overrides["epochs"] = value
            continue
        current = get_recipe(old.recipe, **old.overrides)
        if getattr(current.replace(**{key: value}), key) != getattr(current, key):
            raise ValueError(f"--resume: {key} differs from the run being resumed "
                             f"({value!r} vs {getattr(current, key)!r}); a resumed run keeps its settings")
    runtime = {k: getattr(cfg, k) for k in ("out", "resume", "device", "progress", "trackers", "num_workers",
                                            "data_dir", "download", "optimizer_factory")}
    # An automatic thread count is kept from the run being resumed (the same count keeps
    # CPU results bit-for-bit repeatable); an explicit --threads wins.
    runtime["threads"] = cfg.threads if cfg.threads is not None else stored.get("threads")
    return dataclasses.replace(old, overrides=overrides, **runtime)


def _input_size(model: nn.Module, info, image_size: int | None) -> tuple[int, int, int]:
    mi = getattr(model, "model_info", None)
    if mi is not None:
        c, h, w = mi.input_size
    else:
        c = getattr(model, "in_chans", info.channels)
        h, w = getattr(model, "input_size", (c, *info.image_size))[-2:]
    if image_size is not None:
        h = w = image_size
    minimum = getattr(model, "min_input_size", 1)
    if h < minimum or w < minimum:
        raise ValueError(f"{getattr(mi, 'name', type(model).__name__)} needs inputs of at least "
                         f"{minimum}x{minimum} pixels; {h}x{w} is too small")
    return int(c), int(h), int(w)


def _probe(model: nn.Module, name: str, dataset: str, input_size, num_classes: int, device) -> int:
    """One tiny forward pass, so a model that cannot take the data fails with a clear
    message; returns the multiply-accumulates of its convolutions and linear layers per image."""
    macs = [0]

    def count(module, inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            per_out = module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.in_features
            macs[0] += output.numel() // output.shape[0] * per_out

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_size, device=device))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"model {name} cannot take {dataset}'s images as "
                         f"{input_size[0]}x{input_size[1]}x{input_size[2]} inputs: {first}") from None
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != num_classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model {name} returns {shape} in eval mode; training on {dataset} needs "
                         f"(N, {num_classes}) class scores")
    return macs[0]


# Below this many multiply-accumulates per training step (forward + backward ~ 3x the
# forward's), a second CPU thread costs about what it saves. benchmarks/threads.py on the
# project's quiet 2-core VM: LeNet-5 at batch 16 (8 M per step) 0.95x with 2 threads,
# at batch 128 (67 M) 1.42x, resnet20 at batch 32 (3.9 G) 1.71x.
SMALL_STEP_MACS = 30e6


def choose_threads(macs_per_image: int, batch_size: int, device: torch.device, local_world_size: int = 1,
                   load: float | None = None) -> tuple[int, str]:
    """The CPU thread count for training: (threads, why). ``load`` is the machine's
    1-minute load average (read when None): cores other processes keep busy are left to
    them, because threads that wait for a core spin against each other."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    share = max(1, cores // max(1, local_world_size))
    if device.type == "cuda":
        return min(share, 4), f"CUDA training: {min(share, 4)} CPU thread(s) feed the GPU"
    step = 3 * macs_per_image * batch_size
    if share == 1:
        return 1, f"{cores} core(s) for {local_world_size} process(es)"
    if step < SMALL_STEP_MACS:
        return 1, f"a small step ({step / 1e6:.0f} M MACs < {SMALL_STEP_MACS / 1e6:.0f} M) gains nothing from more threads"
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    free = max(1, cores - int(load))
    if free < share:
        return free, (f"{free} of {cores} cores: the load average is {load:.1f}, and threads waiting for a busy "
                      "core slow each other down")
    return share, f"{share} of {cores} cores for this process ({step / 1e9:.2f} G MACs per step)"


def _split_validation(train_set, fraction: float, seed: int):
    """(train, val): a stratified ``fraction`` of every class held out, seeded by ``seed``."""
    from cnnlab.data.core import stratified_holdout

    labels = train_set.labels
    held = stratified_holdout(labels, fraction, "val-split", seed, num_classes=len(train_set.classes))
    if int(held.sum()) == 0:
        raise ValueError(f"val_fraction {fraction} of {len(labels)} training images holds out no image; "
                         "raise --val-fraction or give --val-fraction 0 for no validation split")
    if int((~held).sum()) == 0:
        raise ValueError(f"val_fraction {fraction} leaves no training images")
    keep = torch.nonzero(~held).flatten().tolist()
    val = torch.nonzero(held).flatten().tolist()
    return train_set.subset(keep), train_set.subset(val)


def train(cfg: TrainConfig, module: nn.Module | None = None) -> dict[str, Any]:
    """Run one training job; returns the dict written to ``results.json``."""
    t_start = time.perf_counter()
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device_type = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    dist_info = distributed.setup(device_type)
    try:
        return _train(cfg, module, dist_info, t_start)
    finally:
        distributed.teardown(dist_info)


# -- the stages of a run -------------------------------------------------------------------


def _open_run(cfg: TrainConfig, module, dist_info) -> tuple[TrainConfig, Recipe, dict | None]:
    """Stage 1: a new run directory, or the run to resume (its stored settings win)."""
    state = None
    if cfg.resume:
        if cfg.out is None:
            cfg, _ = _resolve(cfg, module)
            cfg = dataclasses.replace(cfg, out=str(_latest_run(cfg.model, cfg.dataset)))
        last = Path(cfg.out) / "last.pt"
        if not last.exists():
            raise FileNotFoundError(f"--resume: nothing to resume in {cfg.out}: no last.pt "
                                    "(the run ended before its first epoch finished?)")
        state = load_checkpoint(last, map_location="cpu")
        cfg = _resume_config(cfg, state["config"])
    cfg, recipe = _resolve(cfg, module)
    if cfg.out is None:
        cfg = dataclasses.replace(cfg, out=str(distributed.broadcast_object(_default_out(cfg.model, cfg.dataset), dist_info)))
    if state is not None and recipe.epochs < int(state["epoch"]):
        raise ValueError(f"--resume --epochs {recipe.epochs}: the run in {cfg.out} has already trained "
                         f"{int(state['epoch'])} epochs; give at least that many")
    return cfg, recipe, state


class RunLock:
    """An exclusive lock on a run directory for the life of a run (``fcntl.flock`` on
    ``.lock``), so two runs can never write one folder; released when the process ends,
    however it ends. Also clears temporary checkpoint files a killed run left behind."""

    def __init__(self, out: Path) -> None:
        self.out, self.file = out, None

    def __enter__(self) -> "RunLock":
        import fcntl

        self.out.mkdir(parents=True, exist_ok=True)
        self.file = open(self.out / ".lock", "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise ValueError(f"another cnnlab run ({holder}) is using {self.out}; wait for it to finish or give "
                             "another --out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()}")
        self.file.flush()
        for stale in self.out.glob(".*.tmp-*"):  # a checkpoint write cut short by a kill
            stale.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # closing releases the lock


@dataclasses.dataclass
class _Data:
    info: Any
    train: Any
    val: Any  # None: no validation split
    test: Any
    val_source: str
    classes: list[str]
    num_classes: int


def _load_data(cfg: TrainConfig, recipe: Recipe) -> _Data:
    """Stage 2: the training, validation and test sets."""
    from cnnlab import data as cdata

    info = cdata.dataset_info(cfg.dataset)
    options = dict(cfg.data_options)
    if cfg.data_root is not None:
        if cfg.dataset != "imagefolder":
            raise ValueError(f"--data-root is for --dataset imagefolder, but this run's dataset is {cfg.dataset}: "
                             f"add --dataset imagefolder to train on the folder {cfg.data_root}")
        options["root"] = cfg.data_root
    if cfg.dataset == "imagefolder" and "root" not in options:
        raise ValueError(f"{cfg.model} trains on an ImageNet-style image folder: give --data-root PATH (a folder "
                         "of class subfolders), or another --dataset (mnist_5k, shapes, cifar10, ...)")
    load = dict(data_dir=cfg.data_dir, download=cfg.download, **options)
    train_set = _subset(cdata.load_dataset(cfg.dataset, "train", **load), cfg.train_samples, cfg.seed)
    test_set = _subset(cdata.load_dataset(cfg.dataset, "test", **load), cfg.test_samples, cfg.seed + 1)
    info = getattr(train_set, "info", info)  # an image folder's own channels, size and statistics
    classes = list(getattr(train_set, "classes", None) or info.classes or [])
    if len(classes) < 2 and classes:
        raise ValueError(f"{cfg.dataset} has a single class ({classes[0]!r}): a classifier needs at least two")
    val_set, source = None, "none (val_fraction 0): best.pt is not kept and nothing is chosen on held-out data"
    if recipe.val_fraction > 0:
        if cdata.has_split(cfg.dataset, "val", **options):
            val_set = cdata.load_dataset(cfg.dataset, "val", **load)
            source = f"the dataset's own validation split ({len(val_set)} images)"
        else:
            train_set, val_set = _split_validation(train_set, recipe.val_fraction, cfg.split_seed)
            source = (f"{len(val_set)} training images held out (val_fraction {recipe.val_fraction:g}, stratified, "
                      f"split seed {cfg.split_seed})")
    return _Data(info, train_set, val_set, test_set, source, classes, len(classes) or info.num_classes)


def _aux_weights(model: nn.Module, recipe: Recipe) -> tuple[float, ...]:
    weights = tuple(model.aux_loss_weights) if getattr(model, "aux_loss_weights", ()) else ()
    if recipe.aux_weight is not None:
        weights = (recipe.aux_weight,) * max(1, len(weights))
    return weights


class _Optimization:
    """Stage 4: optimizer, learning-rate schedule, fp16 loss scaling, weight averaging and
    the per-step extras some papers use (scheduled drop-path, filter renormalization)."""

    def __init__(self, model: nn.Module, recipe: Recipe, steps_per_epoch: int, precision: str, device, factory) -> None:
        self.model, self.recipe = model, recipe
        self.optimizer = optim.build_optimizer(model, recipe, factory)
        self.schedule = LRSchedule(recipe, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.ema = optim.make_ema(model, recipe.ema_decay) if recipe.ema_decay else None
        self.drop_path = getattr(model, "set_drop_path_progress", None)

    def before_step(self, step: int) -> float:
        if self.drop_path is not None:  # ScheduledDropPath (Zoph et al. 2017): ramps with training progress
            self.drop_path(step / max(1, self.schedule.total_steps))
        return self.schedule.apply(self.optimizer, step)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.recipe.filter_rms_max > 0:
            optim.renorm_filters(self.model, self.recipe.filter_rms_max)
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The weights evaluation uses: the moving average when the recipe keeps one."""
        return self.ema.module if self.ema is not None else model

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "ema": self.ema.state_dict() if self.ema is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise ValueError(f"--resume: the optimizer state in the checkpoint does not fit: {exc}") from None
        self.schedule.load_state_dict(state["schedule"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])


def _train(cfg, module, dist_info, t_start) -> dict[str, Any]:
    device = resolve_device(cfg.device, dist_info.local_rank)
    main = dist_info.is_main

    # 1. The run directory (locked for this run); 2. the data.
    cfg, recipe, state = _open_run(cfg, module, dist_info)
    out = Path(cfg.out)
    with contextlib.ExitStack() as stack:
        if main:
            stack.enter_context(RunLock(out))
            if not cfg.resume and (out / "last.pt").exists():
                raise ValueError(f"{out} already holds a run; pass --resume to continue it or --out for a new folder")
        if state is not None and int(state["epoch"]) >= recipe.epochs and (out / "results.json").exists():
            if main:
                print(f"{out}: the run already finished its {recipe.epochs} epochs; its results stand "
                      f"(results.json). Give --epochs N to train it further.", flush=True)
            return json.loads((out / "results.json").read_text())
        return _run(cfg, module, recipe, state, out, dist_info, device, t_start)


def _run(cfg, module, recipe, state, out, dist_info, device, t_start) -> dict[str, Any]:
    """Stages 2-7: data, model, loaders, optimization, resume, then the epochs and the test."""
    data = _load_data(cfg, recipe)
    note = recipe_note(cfg.model) if module is None and cfg.recipe == recipe_for_model(cfg.model).name else ""
    if dist_info.is_main and note and cfg.progress != "none":
        print(f"{cfg.model}: {note}.", flush=True)
    cfg, net = _build_model(cfg, module, recipe, data, device, dist_info)
    loaders = _make_loaders(cfg, recipe, data, net.input_size, device, dist_info)
    run = _Run(cfg, recipe, data, net, loaders, registered=module is None, note=note, out=out, dist_info=dist_info,
               device=device, t_start=t_start)
    run.resume(state)
    try:
        run.open_records()
        for epoch in range(run.start_epoch, recipe.epochs):
            run.epoch = epoch
            run.end_epoch(epoch, run.train_epoch(epoch))
        return run.finish()
    except KeyboardInterrupt:
        run.say_interrupted()
        raise
    finally:
        run.close()


@dataclasses.dataclass
class _Net:
    model: nn.Module  # the registered (or given) module, never wrapped
    input_size: tuple[int, int, int]
    macs: int  # per image, convolutions and linear layers
    threads: int
    threads_why: str
    aux_weights: tuple[float, ...]


def _build_model(cfg, module, recipe, data: _Data, device, dist_info) -> tuple[TrainConfig, _Net]:
    """Stage 3: the model, seeded, on the device; the CPU thread count from its size."""
    from cnnlab.registry import create_model

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=data.num_classes, pretrained=cfg.pretrained) if module is None else module
    if cfg.freeze_backbone and module is None:  # fine-tune the classifier only
        from cnnlab.weights import freeze_backbone
        freeze_backbone(model)
    input_size = _input_size(model, data.info, cfg.image_size)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    macs = _probe(model, cfg.model, cfg.dataset, input_size, data.num_classes, device)
    threads, why = choose_threads(macs, recipe.batch_size, device, dist_info.local_world_size)
    if cfg.threads is not None:
        threads, why = cfg.threads, "given (--threads)" if not cfg.resume else "kept from the run"
    torch.set_num_threads(threads)
    cfg = dataclasses.replace(cfg, threads=threads)
    net = _Net(model, input_size, macs, threads, why, _aux_weights(model, recipe))
    if dist_info.is_main and cfg.progress != "none":
        val_text = f" / {len(data.val)} validation" if data.val is not None else ""
        print(f"{cfg.model} on {cfg.dataset}: {len(data.train)} training{val_text} / {len(data.test)} test images; "
              f"recipe {recipe.name} ({recipe.optimizer_text()}, lr {recipe.lr:g}, {recipe.epochs} epochs); "
              f"{threads} CPU thread(s): {why}", flush=True)
    torch.manual_seed(cfg.seed + 1000 * dist_info.rank + 1)  # dropout / drop-path draws differ per rank
    return cfg, net


@dataclasses.dataclass
class _Loaders:
    train: Any
    val: Any  # None: no validation split
    test: Any


def _make_loaders(cfg, recipe, data: _Data, input_size, device, dist_info) -> _Loaders:
    """The training loader (augmented, sharded under torchrun) and the evaluation loaders."""
    from cnnlab import data as cdata

    augment = cdata.AugmentConfig(**recipe.augment_kwargs())
    kw = dict(device=device, input_size=input_size, seed=cfg.seed, rank=dist_info.rank,
              world_size=dist_info.world_size, num_workers=cfg.num_workers)
    train = cdata.make_loader(data.train, batch_size=recipe.batch_size, train=True, augment=augment, **kw)
    if len(train) == 0:
        raise ValueError(f"the training set ({len(data.train)} images) is smaller than one batch of {recipe.batch_size}")
    eval_batch = max(recipe.batch_size, 256)
    val = cdata.make_loader(data.val, batch_size=eval_batch, train=False, **kw) if data.val is not None else None
    return _Loaders(train, val, cdata.make_loader(data.test, batch_size=eval_batch, train=False, **kw))


@dataclasses.dataclass
class _EpochStats:
    seconds: float
    images: int
    loss: float
    top1: float
    lr: float


class _Run:
    """The state of a run across its epochs (step, best validation, timings) and what it
    does with it: train an epoch, validate, log, checkpoint, evaluate the test set."""

    def __init__(self, cfg, recipe, data: _Data, net: _Net, loaders: _Loaders, *, registered: bool, note: str,
                 out: Path, dist_info, device, t_start) -> None:
        self.cfg, self.recipe, self.data, self.net, self.loaders = cfg, recipe, data, net, loaders
        self.note, self.out, self.dist, self.device, self.t_start = note, out, dist_info, device, t_start
        self.main = dist_info.is_main
        self.steps_per_epoch = len(loaders.train)
        # Stage 4: optimizer, schedule, loss scaling, weight averaging; DDP and compile wrap the model.
        self.raw_model = model = net.model
        self.opt = _Optimization(model, recipe, self.steps_per_epoch, cfg.precision, device, cfg.optimizer_factory)
        if dist_info.enabled:
            ddp_kw = {"device_ids": [device.index]} if device.type == "cuda" else {}
            model = nn.parallel.DistributedDataParallel(model, **ddp_kw)
        if cfg.compile:
            model = torch.compile(model, backend=cfg.compile_backend)
        self.model = model
        self.start_epoch = self.epoch = self.step = 0
        self.best_val, self.best_epoch = -1.0, None
        self.resumed = False
        self.last_good: int | None = None  # the epoch last.pt holds
        self.val: dict[str, Any] | None = None  # the latest validation
        self.train_images, self.train_seconds = 0, 0.0
        self.trackers: list = []
        self.layer_stats = None  # with --layer-stats N: the per-layer recorder (cnnlab.train.layerstats)
        self.progress = _Progress(cfg.progress, enabled=self.main)
        self.meta = {
            "model": cfg.model, "registered": registered, "num_classes": data.num_classes,
            "input_size": list(net.input_size), "classes": data.classes,
            "dataset": cfg.dataset, "dataset_channels": data.info.channels,
            "dataset_image_size": list(data.info.image_size), "mean": list(data.info.mean), "std": list(data.info.std),
            "cnnlab": env.versions()["cnnlab"], "eval_weights": "ema" if self.opt.ema is not None else "model",
        }
        self.resolved = {**cfg.to_dict(), "overrides": recipe.to_dict()}

    # -- stage 5: resume; the records ---------------------------------------------------------

    def resume(self, state: dict | None) -> None:
        """Weights, optimizer, schedule, scaler, averages, RNG; the data order follows from (seed, epoch)."""
        if state is None:
            return
        self.raw_model.load_state_dict(state["model"])
        self.opt.load_state_dict(state)
        rank = self.dist.rank
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        self.start_epoch = self.epoch = self.last_good = int(state["epoch"])
        self.step = int(state["step"])
        self.best_val, self.best_epoch = float(state["best_top1"]), state.get("best_epoch")
        self.resumed = True

    def open_records(self) -> None:
        """config.json for a new run (what was asked, resolved, and the machine), and the trackers."""
        if not self.main:
            return
        cfg, net, out = self.cfg, self.net, self.out
        out.mkdir(parents=True, exist_ok=True)
        if not self.resumed:
            record = {"config": self.resolved, "recipe": self.recipe.describe(), "recipe_note": self.note,
                      "model": self.meta, "params": sum(p.numel() for p in self.raw_model.parameters()),
                      "macs_per_image": net.macs, "threads": net.threads, "threads_reason": net.threads_why,
                      "validation": self.data.val_source, "world_size": self.dist.world_size,
                      "device": str(self.device), "versions": env.versions(), "machine": env.machine(),
                      "git_commit": env.git_commit(), "command": sys.argv,
                      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
        self.trackers = make_trackers(cfg.trackers, out, self.resolved, run_name=out.name,
                                      resume_epoch=self.start_epoch if self.resumed else 0)
        if self.resumed:
            self.log({"kind": "resume", "epoch": self.start_epoch, "step": self.step})
        self.open_layer_stats(self.resumed)

    def open_layer_stats(self, resumed: bool) -> None:
        """--layer-stats N: layers.jsonl, a file of its own (main process only)."""
        if not self.cfg.layer_stats_every:
            return
        from cnnlab.train.layerstats import LayerStats

        cfg = self.cfg
        self.layer_stats = LayerStats(self.raw_model, self.data, self.net.input_size, every=cfg.layer_stats_every,
                                      device=self.device, out=self.out, precision=cfg.precision,
                                      channels_last=cfg.channels_last, seed=cfg.seed,
                                      resume_epoch=self.start_epoch if resumed else None, step=self.step)

    def log(self, record: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log(record)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
        if self.layer_stats is not None:
            self.layer_stats.close()

    def checkpoint(self, epoch: int, is_best: bool) -> None:
        rngs = [rng_state()]
        if self.dist.enabled:
            rngs = [None] * self.dist.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        if not self.main:
            return
        ckpt = {"model": self.raw_model.state_dict(), **self.opt.state_dict(), "rng": rngs, "epoch": epoch,
                "step": self.step, "best_top1": self.best_val, "best_epoch": self.best_epoch,
                "config": self.resolved, "meta": self.meta}
        save_checkpoint(ckpt, self.out / "last.pt")
        if is_best:
            save_checkpoint(ckpt, self.out / "best.pt")

    def evaluate(self, loader) -> dict[str, float]:
        cfg = self.cfg
        return evaluate(self.opt.eval_model(self.model), loader, device=self.device, precision=cfg.precision,
                        channels_last=cfg.channels_last, dist_info=self.dist)

    # -- stage 6: the epochs ------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> _EpochStats:
        """One pass over the training set; stops with TrainingDiverged on a non-finite loss."""
        cfg, recipe, device, opt, model = self.cfg, self.recipe, self.device, self.opt, self.model
        loader, steps = self.loaders.train, self.steps_per_epoch
        model.train()
        loader.set_epoch(epoch)
        self.progress.start_epoch(epoch + 1, recipe.epochs, steps)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = shown = 0
        lr = 0.0
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(loader):
            lr = opt.before_step(self.step)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.precision):
                output = model(x)
            loss, logits = loss_fn(output, y, label_smoothing=recipe.label_smoothing,
                                   aux_weights=self.net.aux_weights)
            opt.step(loss)
            self.step += 1
            if self.layer_stats is not None:  # --layer-stats N: every N steps (no effect on training)
                self.layer_stats.after_step(epoch + 1, self.step, last_in_epoch=i == steps - 1)
            seen += y.shape[0]
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (logits.detach().argmax(dim=1) == y).sum()
            if device.type == "cpu" or i % 20 == 0 or i == steps - 1:  # (a GPU is not synchronised every step)
                self._check_finite(loss.item(), epoch)
                self.progress.update(i + 1 - shown, loss_sum.item() / seen, correct.item() / seen,
                                     seen / (time.perf_counter() - t0))
                shown = i + 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0 - (self.layer_stats.pop_seconds() if self.layer_stats is not None else 0.0)
        loss_total, correct_total, seen_total = distributed.all_sum([loss_sum.item(), correct.item(), seen],
                                                                    self.dist, device)
        self.train_images += int(seen_total)
        self.train_seconds += seconds
        return _EpochStats(seconds, int(seen_total), loss_total / seen_total, correct_total / seen_total, lr)

    def _check_finite(self, loss: float, epoch: int) -> None:
        if math.isfinite(loss):
            return
        good = f"{self.out / 'last.pt'} (epoch {self.last_good})" if self.last_good else "none: no epoch finished"
        self.log({"kind": "diverged", "epoch": epoch + 1, "step": self.step, "loss": loss})
        raise TrainingDiverged(f"loss became {loss} at epoch {epoch + 1}, step {self.step}: training "
                               f"stopped; the last good checkpoint is {good}. Try a lower --lr.")

    def end_epoch(self, epoch: int, stats: _EpochStats) -> None:
        """Validate, step a plateau schedule, log the epoch, checkpoint (best.pt by validation top-1)."""
        record = {"kind": "epoch", "epoch": epoch + 1, "step": self.step, "lr": stats.lr,
                  "train_loss": stats.loss, "train_top1": stats.top1,
                  "epoch_seconds": stats.seconds, "images_per_second": stats.images / stats.seconds}
        is_best = False
        if self.loaders.val is not None:
            val = self.val = self.evaluate(self.loaders.val)
            record.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
            is_best = val["top1"] > self.best_val
            if is_best:
                self.best_val, self.best_epoch = val["top1"], epoch + 1
        plateau_on = stats.top1 if self.recipe.plateau_metric == "train" else (self.val or {}).get("top1", 0.0)
        self.opt.schedule.epoch_end(plateau_on)
        self.log(record)
        if self.layer_stats is not None:
            self.layer_stats.end_epoch(epoch + 1, self.step)
        self.checkpoint(epoch + 1, is_best)
        self.last_good = epoch + 1
        val = self.val
        shown_val = f"val loss {val['loss']:.4f} top-1 {100 * val['top1']:.2f}%  " if val is not None else ""
        self.progress.end_epoch(
            f"epoch {epoch + 1}/{self.recipe.epochs}  train loss {stats.loss:.4f} "
            f"acc {100 * stats.top1:.2f}%  {shown_val}lr {stats.lr:.3g}  "
            f"{record['images_per_second']:.0f} img/s  {stats.seconds:.1f}s")

    # -- stage 7: the test set, once, with the final weights; the results -----------------------

    def finish(self) -> dict[str, Any]:
        cfg, recipe, loaders = self.cfg, self.recipe, self.loaders
        if loaders.val is not None and self.val is None:  # resumed a finished run: nothing trained
            self.val = self.evaluate(loaders.val)
        test, val = self.evaluate(loaders.test), self.val
        wall = time.perf_counter() - self.t_start
        summary = lambda e: {"top1": e["top1"], "top5": e["top5"], "loss": e["loss"], "samples": e["samples"]}  # noqa: E731
        results = {
            "model": cfg.model, "dataset": cfg.dataset, "recipe": recipe.name, "epochs": recipe.epochs,
            "test": summary(test), "val": summary(val) if val is not None else None,
            "best_val_top1": self.best_val if loaders.val is not None else None, "best_epoch": self.best_epoch,
            "evaluated_weights": "exponential moving average" if self.opt.ema is not None else "final",
            "validation": self.data.val_source, "threads": self.net.threads,
            "world_size": self.dist.world_size, "device": str(self.device),
            "precision": cfg.precision, "wall_seconds": wall,
            "images_per_second": self.train_images / self.train_seconds if self.train_seconds else None,
            "train_images": self.train_images, "steps": self.step, "out": str(self.out),
            "resumed_from_epoch": self.start_epoch if self.resumed else None,
        }
        if self.main:
            (self.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            self.log({"kind": "results", "epoch": recipe.epochs, "test_top1": test["top1"], "test_top5": test["top5"],
                      "test_loss": test["loss"], "val_top1": results["val"] and results["val"]["top1"],
                      "wall_seconds": wall})
        return results

    def say_interrupted(self) -> None:
        """Ctrl-C: which epoch last.pt holds, and how to go on."""
        if not self.main:
            return
        out, last = self.out, self.last_good
        kept = f"{out / 'last.pt'} holds epoch {last}" if last else "no epoch finished, nothing was kept"
        resume = f"; continue with: cnnlab train {self.cfg.model} --resume --out {out}" if last else ""
        print(f"\ninterrupted during epoch {self.epoch + 1} of {self.recipe.epochs}: {kept}{resume}",
              file=sys.stderr, flush=True)
