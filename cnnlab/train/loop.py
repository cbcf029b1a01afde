"""The training loop, top to bottom.

    results = fit("lenet5")                          # digits, the LeNet-5 recipe
    results = fit("resnet20", "cifar10", epochs=10)  # any recipe field as a keyword
    results = fit(my_module, "shapes", recipe="fast")

``train(config)`` runs one :class:`~cnnlab.train.config.TrainConfig`; it is what
``cnnlab train`` calls. The story: join the process group (under torchrun), make the
run directory, load the data, build the model, build optimizer/schedule/scaler,
resume if asked, then for each epoch train, evaluate, log, checkpoint; finally write
``results.json``.
"""
from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.train import distributed, env, optim
from cnnlab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnlab.train.config import TrainConfig
from cnnlab.train.recipes import Recipe, default_dataset, get_recipe, recipe_for_model
from cnnlab.train.schedule import LRSchedule
from cnnlab.train.trackers import make_trackers

__all__ = ["fit", "train", "evaluate", "TrainingDiverged", "loss_fn", "resolve_device", "autocast"]


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
        return nullcontext()
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


def _param_groups(model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    if recipe.decay_norm_and_bias or recipe.weight_decay == 0:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": recipe.weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # biases and norm scales are 1-D
    return [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: Recipe) -> optim.Optimizer:
    groups = _param_groups(model, recipe)
    if recipe.optimizer == "sgd":
        return optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    return optim.Adam(groups, lr=recipe.lr, betas=(recipe.momentum, 0.999), decoupled=recipe.optimizer == "adamw")


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


def _default_out(model: str, dataset: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model}-{dataset}-{stamp}"


def _latest_run(model: str, dataset: str) -> Path:
    runs = sorted(glob.glob(os.path.join("runs", f"{model}-{dataset}-*")))
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

    Keywords that are recipe fields (``epochs``, ``lr``, ``batch_size``, ...) override
    the recipe; the others are :class:`TrainConfig` fields (``out``, ``seed``, ``device``...).
    """
    run_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    overrides = dict(options.pop("overrides", {}))
    for key in list(options):
        if key in recipe_fields:
            overrides[key] = options.pop(key)
        elif key not in run_fields:
            raise TypeError(f"fit() got an unknown option {key!r}")
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
                                            "data_dir", "download", "threads")}
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


def _probe(model: nn.Module, name: str, dataset: str, input_size, num_classes: int, device) -> None:
    """One tiny forward pass, so a model that cannot take the data fails with a clear message."""
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
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != num_classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model {name} returns {shape} in eval mode; training on {dataset} needs "
                         f"(N, {num_classes}) class scores")


def train(cfg: TrainConfig, module: nn.Module | None = None) -> dict[str, Any]:
    """Run one training job; returns the dict written to ``results.json``."""
    from cnnlab import data as cdata
    from cnnlab.registry import create_model

    t_start = time.perf_counter()
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device_type = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    dist_info = distributed.setup(device_type)
    try:
        return _train(cfg, module, dist_info, t_start, cdata, create_model)
    finally:
        distributed.teardown(dist_info)


def _train(cfg, module, dist_info, t_start, cdata, create_model) -> dict[str, Any]:
    device = resolve_device(cfg.device, dist_info.local_rank)
    main = dist_info.is_main

    # 1. The run directory: a new one, or the one to resume (its config wins).
    state = None
    if cfg.resume:
        if cfg.out is None:
            cfg, _ = _resolve(cfg, module)
            cfg = dataclasses.replace(cfg, out=str(_latest_run(cfg.model, cfg.dataset)))
        last = Path(cfg.out) / "last.pt"
        if not last.exists():
            raise FileNotFoundError(f"--resume: nothing to resume in {cfg.out}: no last.pt "
                                    "(the run ended before its first epoch finished?)")
        state = load_checkpoint(last, map_location=device)
        cfg = _resume_config(cfg, state["config"])
    cfg, recipe = _resolve(cfg, module)
    if cfg.out is None:
        cfg = dataclasses.replace(cfg, out=str(distributed.broadcast_object(_default_out(cfg.model, cfg.dataset), dist_info)))
    out = Path(cfg.out)
    if main and not cfg.resume and (out / "last.pt").exists():
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or --out for a new folder")

    # 2. The data: in-memory uint8 tensors (or an image folder), batched on the device.
    info = cdata.dataset_info(cfg.dataset)
    options = dict(cfg.data_options)
    if cfg.data_root is not None:
        options["root"] = cfg.data_root
    if cfg.dataset == "imagefolder" and "root" not in options:
        raise ValueError(f"{cfg.model} trains on an ImageNet-style image folder: give --data-root PATH (a folder "
                         "of class subfolders), or another --dataset (shapes, cifar10, ...)")
    train_set = cdata.load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir, download=cfg.download, **options)
    test_set = cdata.load_dataset(cfg.dataset, "test", data_dir=cfg.data_dir, download=cfg.download, **options)
    train_set = _subset(train_set, cfg.train_samples, cfg.seed)
    test_set = _subset(test_set, cfg.test_samples, cfg.seed + 1)
    classes = list(getattr(train_set, "classes", None) or info.classes or [])
    num_classes = len(classes) or info.num_classes

    # 3. The model, seeded, on the device.
    torch.manual_seed(cfg.seed)
    if module is None:
        model = create_model(cfg.model, num_classes=num_classes, pretrained=cfg.pretrained)
        if cfg.freeze_backbone:  # fine-tune the classifier only
            from cnnlab.weights import freeze_backbone
            freeze_backbone(model)
    else:
        model = module
    input_size = _input_size(model, info, cfg.image_size)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    _probe(model, cfg.model, cfg.dataset, input_size, num_classes, device)
    aux_weights = tuple(model.aux_loss_weights) if getattr(model, "aux_loss_weights", ()) else ()
    if recipe.aux_weight is not None:
        aux_weights = (recipe.aux_weight,) * max(1, len(aux_weights))
    torch.manual_seed(cfg.seed + 1000 * dist_info.rank + 1)  # dropout / drop-path draws differ per rank

    augment = cdata.AugmentConfig(**recipe.augment_kwargs())
    loader_kw = dict(device=device, input_size=input_size, seed=cfg.seed, rank=dist_info.rank,
                     world_size=dist_info.world_size, num_workers=cfg.num_workers)
    train_loader = cdata.make_loader(train_set, batch_size=recipe.batch_size, train=True, augment=augment, **loader_kw)
    test_loader = cdata.make_loader(test_set, batch_size=max(recipe.batch_size, 256), train=False, **loader_kw)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f"the training set ({len(train_set)} images) is smaller than one batch of {recipe.batch_size}")

    # 4. Optimizer, learning-rate schedule, loss scaling for fp16.
    raw_model = model
    optimizer = make_optimizer(raw_model, recipe)
    schedule = LRSchedule(recipe, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    if dist_info.enabled:
        ddp_kw = {"device_ids": [device.index]} if device.type == "cuda" else {}
        model = nn.parallel.DistributedDataParallel(model, **ddp_kw)
    if cfg.compile:
        model = torch.compile(model, backend=cfg.compile_backend)

    # 5. Resume: weights, optimizer, schedule, scaler, RNG; the data order follows from (seed, epoch).
    start_epoch, step, best_top1 = 0, 0, -1.0
    if state is not None:
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][dist_info.rank] if dist_info.rank < len(state["rng"]) else state["rng"][0])
        start_epoch, step, best_top1 = int(state["epoch"]), int(state["step"]), float(state["best_top1"])

    meta = {
        "model": cfg.model, "registered": module is None, "num_classes": num_classes,
        "input_size": list(input_size), "classes": classes, "dataset": cfg.dataset,
        "dataset_channels": info.channels, "dataset_image_size": list(info.image_size),
        "mean": list(info.mean), "std": list(info.std), "cnnlab": env.versions()["cnnlab"],
    }
    resolved = {**cfg.to_dict(), "overrides": recipe.to_dict()}
    trackers = []
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if state is None:
            params = sum(p.numel() for p in raw_model.parameters())
            record = {"config": resolved, "recipe": recipe.describe(), "model": meta, "params": params,
                      "world_size": dist_info.world_size, "device": str(device), "versions": env.versions(),
                      "machine": env.machine(), "git_commit": env.git_commit(), "command": sys.argv,
                      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
        trackers = make_trackers(cfg.trackers, out, resolved, run_name=out.name)
        if state is not None:
            for t in trackers:
                t.log({"kind": "resume", "epoch": start_epoch, "step": step})

    def log(record: dict[str, Any]) -> None:
        for t in trackers:
            t.log(record)

    def checkpoint(epoch: int, is_best: bool) -> None:
        rngs = [rng_state()]
        if dist_info.enabled:
            rngs = [None] * dist_info.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        if not main:
            return
        ckpt = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": rngs, "epoch": epoch, "step": step, "best_top1": best_top1,
                "config": resolved, "meta": meta}
        save_checkpoint(ckpt, out / "last.pt")
        if is_best:
            save_checkpoint(ckpt, out / "best.pt")

    # 6. The epochs.
    progress = _Progress(cfg.progress, enabled=main)
    train_images, train_seconds = 0, 0.0
    test = {"loss": float("nan"), "top1": 0.0, "top5": 0.0}
    last_good = start_epoch if state is not None else None
    model.train()
    try:
        for epoch in range(start_epoch, recipe.epochs):
            train_loader.set_epoch(epoch)
            progress.start_epoch(epoch + 1, recipe.epochs, steps_per_epoch)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = shown = 0
            t0 = time.perf_counter()
            for i, (x, y) in enumerate(train_loader):
                lr = schedule.apply(optimizer, step)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, cfg.precision):
                    output = model(x)
                loss, logits = loss_fn(output, y, label_smoothing=recipe.label_smoothing, aux_weights=aux_weights)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if recipe.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(raw_model.parameters(), recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                n = y.shape[0]
                seen += n
                loss_sum += loss.detach().double() * n
                correct += (logits.detach().argmax(dim=1) == y).sum()
                if device.type == "cpu" or i % 20 == 0 or i == steps_per_epoch - 1:
                    current = loss.item()
                    if not math.isfinite(current):
                        good = f"{out / 'last.pt'} (epoch {last_good})" if last_good else "none: no epoch finished"
                        log({"kind": "diverged", "epoch": epoch + 1, "step": step, "loss": current})
                        raise TrainingDiverged(f"loss became {current} at epoch {epoch + 1}, step {step}: training "
                                               f"stopped; the last good checkpoint is {good}. Try a lower --lr.")
                    progress.update(i + 1 - shown, loss_sum.item() / seen, correct.item() / seen,
                                    seen / (time.perf_counter() - t0))
                    shown = i + 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            epoch_seconds = time.perf_counter() - t0
            loss_total, correct_total, seen_total = distributed.all_sum(
                [loss_sum.item(), correct.item(), seen], dist_info, device)
            train_images += int(seen_total)
            train_seconds += epoch_seconds

            test = evaluate(model, test_loader, device=device, precision=cfg.precision,
                            channels_last=cfg.channels_last, dist_info=dist_info)
            schedule.epoch_end(test["top1"])
            is_best = test["top1"] > best_top1
            best_top1 = max(best_top1, test["top1"])
            record = {"kind": "epoch", "epoch": epoch + 1, "step": step, "lr": lr,
                      "train_loss": loss_total / seen_total, "train_top1": correct_total / seen_total,
                      "test_loss": test["loss"], "test_top1": test["top1"], "test_top5": test["top5"],
                      "epoch_seconds": epoch_seconds, "images_per_second": seen_total / epoch_seconds}
            log(record)
            checkpoint(epoch + 1, is_best)
            last_good = epoch + 1
            progress.end_epoch(
                f"epoch {epoch + 1}/{recipe.epochs}  train loss {record['train_loss']:.4f} "
                f"acc {100 * record['train_top1']:.2f}%  test loss {test['loss']:.4f} "
                f"top-1 {100 * test['top1']:.2f}% top-5 {100 * test['top5']:.2f}%  "
                f"lr {lr:.3g}  {record['images_per_second']:.0f} img/s  {epoch_seconds:.1f}s")

        # 7. The results.
        if state is not None and start_epoch >= recipe.epochs:  # nothing left to train: report the checkpoint
            test = evaluate(model, test_loader, device=device, precision=cfg.precision,
                            channels_last=cfg.channels_last, dist_info=dist_info)
        wall = time.perf_counter() - t_start
        results = {
            "model": cfg.model, "dataset": cfg.dataset, "recipe": recipe.name, "epochs": recipe.epochs,
            "test": {"top1": test["top1"], "top5": test["top5"], "loss": test["loss"]},
            "best_top1": best_top1, "world_size": dist_info.world_size, "device": str(device),
            "precision": cfg.precision, "wall_seconds": wall,
            "images_per_second": train_images / train_seconds if train_seconds else None,
            "train_images": train_images, "steps": step, "out": str(out),
            "resumed_from_epoch": start_epoch if state is not None else None,
        }
        if main:
            (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            log({"kind": "results", "epoch": recipe.epochs, "test_top1": test["top1"], "test_top5": test["top5"],
                 "test_loss": test["loss"], "wall_seconds": wall})
        return results
    finally:
        for t in trackers:
            t.close()
