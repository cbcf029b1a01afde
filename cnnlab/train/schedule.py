"""Learning-rate schedules, evaluated per iteration from the step count.

The learning rate is a pure function of the global step (plus, for ``plateau``, the
drops taken so far), so resuming from a checkpoint restores it exactly:

    step       gamma ** floor(epoch / step_epochs)         (GoogLeNet: 0.96 every 8 epochs)
    multistep  gamma ** (milestones passed)                (ResNet: /10 at 50% and 75%)
    cosine     (1 + cos(pi t)) / 2, t = progress after warm-up
    linear     1 - t                                       (with warm-up: one-cycle)
    plateau    gamma ** (drops), a drop after ``plateau_patience`` epochs without a better
               validation top-1 (AlexNet, VGG, ResNet on ImageNet) or, with
               ``plateau_metric="train"``, training top-1 (NiN); at most ``max_drops``
    constant   1

Warm-up runs for the first ``warmup_epochs`` (may be fractional), either ramping
linearly from ``warmup_lr`` or holding ``warmup_lr`` (ResNet-110's 0.01 for ~400
iterations).
"""
from __future__ import annotations

import math
from typing import Any

from cnnlab.train.recipes import Recipe

__all__ = ["LRSchedule"]


class LRSchedule:
    def __init__(self, recipe: Recipe, steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.recipe = recipe
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = recipe.epochs * steps_per_epoch
        self.warmup_steps = min(self.total_steps, round(recipe.warmup_epochs * steps_per_epoch))
        self.milestone_epochs = [round(m * recipe.epochs) for m in recipe.milestones]
        # plateau state
        self.drops = 0
        self.best: float | None = None
        self.bad_epochs = 0

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rate after warm-up."""
        r = self.recipe
        epoch = step // self.steps_per_epoch
        if r.schedule == "constant":
            return 1.0
        if r.schedule == "step":
            return r.gamma ** math.floor(epoch / r.step_epochs)
        if r.schedule == "multistep":
            return r.gamma ** sum(epoch >= m for m in self.milestone_epochs)
        if r.schedule == "plateau":
            return r.gamma ** self.drops
        span = max(1, self.total_steps - self.warmup_steps)
        t = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        if r.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if r.schedule == "linear":
            return 1.0 - t
        raise ValueError(f"unknown schedule {r.schedule!r}")

    def lr(self, step: int) -> float:
        """The learning rate for global step ``step`` (0-based)."""
        r = self.recipe
        target = r.lr * self.factor(step)
        if step < self.warmup_steps:
            if r.warmup == "constant":
                return r.warmup_lr
            return r.warmup_lr + (target - r.warmup_lr) * step / self.warmup_steps
        return target

    def apply(self, optimizer: Any, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def epoch_end(self, top1: float) -> None:
        """Feed the epoch's watched top-1 (validation or training, ``plateau_metric``) to
        the plateau rule (no-op for other schedules)."""
        if self.recipe.schedule != "plateau":
            return
        if self.recipe.max_drops and self.drops >= self.recipe.max_drops:
            return
        if self.best is None or top1 > self.best + 1e-4:
            self.best = top1
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.recipe.plateau_patience:
            self.drops += 1
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"drops": self.drops, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.drops = int(state["drops"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
