"""The training numbers, each against an independent computation: learning-rate schedules
step by step, the plateau rule's bookkeeping, weight averaging of buffers, filter
renormalization per filter, the number checks of recipes and run settings.

Every test here is a plain function call (no training run): well under a second each.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cnnlab.train.recipes import get_recipe
from cnnlab.train.schedule import LRSchedule


# -- learning-rate schedules ----------------------------------------------------------------


def _by_hand(recipe, steps_per_epoch, step):
    """The learning rate of the module docstring, written out independently."""
    total = recipe.epochs * steps_per_epoch
    warm = min(total, round(recipe.warmup_epochs * steps_per_epoch))
    epoch = math.floor(step / steps_per_epoch)  # completed epochs
    if recipe.schedule == "constant":
        f = 1.0
    elif recipe.schedule == "step":
        f = recipe.gamma ** math.floor(epoch / recipe.step_epochs)
    elif recipe.schedule == "multistep":
        f = recipe.gamma ** len([m for m in recipe.milestones if epoch >= round(m * recipe.epochs)])
    else:
        t = min(1.0, max(0.0, (step - warm) / max(1, total - warm)))
        f = (1 + math.cos(math.pi * t)) / 2 if recipe.schedule == "cosine" else 1 - t
    target = recipe.lr * f
    if step < warm:
        if recipe.warmup == "constant":
            return recipe.warmup_lr
        return recipe.warmup_lr + (target - recipe.warmup_lr) * step / warm
    return target


@pytest.mark.parametrize("name, overrides, steps_per_epoch", [
    ("fast", {"schedule": "constant", "warmup_epochs": 0}, 3),
    ("fast", {"schedule": "constant"}, 2),  # warm-up, then the constant rate
    ("fast", {}, 7),  # linear warm-up from 0.02 to 0.2 over 3 epochs, then linear decay to 0
    ("fast", {"schedule": "cosine", "warmup_epochs": 1.5}, 4),  # a fractional warm-up: 6 steps
    ("nasnet_cifar", {"epochs": 6}, 5),
    ("googlenet", {"epochs": 20, "step_epochs": 2.5}, 3),  # a fractional step: drops at epochs 3, 5, 8, ...
    ("inception_v3", {"epochs": 9}, 2),
    ("wide_resnet", {"epochs": 10}, 3),  # x0.2 at epochs 3, 6, 8
    ("resnet110_cifar", {"epochs": 6, "warmup_epochs": 0.5}, 4),  # constant warm-up at 0.01
    ("fractalnet", {"epochs": 16}, 2),
    ("squeezenet", {"epochs": 5, "warmup_epochs": 1.0, "warmup_lr": 0.004}, 3),
])
def test_every_step_of_a_schedule_is_the_formula_by_hand(name, overrides, steps_per_epoch):
    recipe = get_recipe(name, **overrides)
    s = LRSchedule(recipe, steps_per_epoch)
    assert s.total_steps == recipe.epochs * steps_per_epoch
    for step in range(s.total_steps):
        assert s.lr(step) == pytest.approx(_by_hand(recipe, steps_per_epoch, step), rel=1e-12, abs=1e-15), step


def test_the_warm_up_ramps_from_warmup_lr_not_from_zero():
    # fast: warmup_lr 0.02 -> lr 0.2 over 3 epochs of 10 steps, then linear to 0 over the other 120.
    s = LRSchedule(get_recipe("fast"), steps_per_epoch=10)
    assert s.warmup_steps == 30
    assert s.lr(0) == pytest.approx(0.02)
    assert s.lr(15) == pytest.approx(0.02 + (0.2 - 0.02) * 15 / 30)  # halfway: 0.11
    assert s.lr(29) == pytest.approx(0.02 + 0.18 * 29 / 30)
    assert s.lr(30) == pytest.approx(0.2)
    assert s.lr(90) == pytest.approx(0.1)  # halfway through the decay
    assert s.lr(149) == pytest.approx(0.2 / 120)


def test_a_step_schedule_changes_the_rate_only_between_epochs():
    # Inception's "0.94 every two epochs" with an odd step of 2.5 epochs: the rate is a function
    # of completed epochs, so it is constant inside an epoch and drops at the first epoch
    # boundary at or after 2.5 k (epochs 3, 5, 8), never in the middle of one.
    s = LRSchedule(get_recipe("inception_v3", step_epochs=2.5, epochs=10), steps_per_epoch=10)
    rates = [s.lr(step) for step in range(100)]
    for epoch in range(10):
        assert len(set(rates[10 * epoch: 10 * epoch + 10])) == 1, epoch
    per_epoch = [rates[10 * e] / 0.045 for e in range(10)]
    assert per_epoch == pytest.approx([1, 1, 1, 0.94, 0.94, 0.94 ** 2, 0.94 ** 2, 0.94 ** 2, 0.94 ** 3, 0.94 ** 3])


def test_milestones_round_to_whole_epochs():
    # DenseNet ImageNet: /10 at 1/3 and 2/3 of 10 epochs -> epochs 3 and 7 (round(3.33), round(6.67)).
    s = LRSchedule(get_recipe("densenet_imagenet", epochs=10), steps_per_epoch=2)
    assert s.milestone_epochs == [3, 7]
    assert [s.lr(2 * e) / 0.1 for e in range(10)] == pytest.approx([1, 1, 1, .1, .1, .1, .1, .01, .01, .01])


def test_one_step_per_epoch_and_a_warm_up_longer_than_the_run():
    s = LRSchedule(get_recipe("fast", epochs=3, warmup_epochs=5), steps_per_epoch=1)  # one batch an epoch
    assert s.warmup_steps == 3  # capped at the run's 3 steps
    assert [s.lr(k) for k in range(3)] == pytest.approx([0.02, 0.02 + 0.18 / 3, 0.02 + 0.36 / 3])
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        LRSchedule(get_recipe("fast"), steps_per_epoch=0)


def test_an_unknown_schedule_set_after_validation_is_refused():
    recipe = get_recipe("fast")
    recipe.schedule = "exponential"  # bypasses Recipe.validate
    with pytest.raises(ValueError, match="unknown schedule 'exponential'"):
        LRSchedule(recipe, steps_per_epoch=2).lr(0)


def test_apply_sets_every_group_and_returns_the_rate():
    # (only ``param_groups`` is used: a stand-in spares torch.optim's slow first import)
    opt = SimpleNamespace(param_groups=[{"lr": 123.0, "weight_decay": 1e-4}, {"lr": 123.0, "weight_decay": 0.0}])
    s = LRSchedule(get_recipe("fast"), steps_per_epoch=10)
    assert s.apply(opt, 15) == pytest.approx(0.11)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.11, 0.11])


# -- the plateau rule -----------------------------------------------------------------------


def _drops_after(recipe, watched):
    """The plateau rule written out: the lr factor after each epoch's watched top-1."""
    best, bad, drops, out = None, 0, 0, []
    for top1 in watched:
        if not (recipe.max_drops and drops >= recipe.max_drops):
            if best is None or top1 > best + 1e-4:
                best, bad = top1, 0
            else:
                bad += 1
                if bad >= recipe.plateau_patience:
                    drops, bad = drops + 1, 0
        out.append(drops)
    return out


@pytest.mark.parametrize("name, overrides", [
    ("alexnet", {"plateau_patience": 2}),
    ("alexnet", {"plateau_patience": 1}),
    ("vgg", {"plateau_patience": 3}),
    # NiN (Lin et al. 2013, Sec. 4.1): divided by 10 "until ... 1% of the initial rate": two drops at most.
    ("nin", {"plateau_patience": 2}),
])
def test_plateau_drops_counted_epoch_by_epoch(name, overrides):
    recipe = get_recipe(name, **overrides)
    watched = [0.30, 0.40, 0.40, 0.39, 0.38, 0.45, 0.45, 0.45, 0.45, 0.44, 0.46, 0.46, 0.46, 0.46, 0.46, 0.46]
    s = LRSchedule(recipe, steps_per_epoch=3)
    got = []
    for top1 in watched:
        s.epoch_end(top1)
        got.append(s.drops)
        assert s.lr(0) == pytest.approx(recipe.lr * recipe.gamma ** s.drops)
    assert got == _drops_after(recipe, watched)
    assert max(got) >= 2  # the sequence does drop more than once


def test_nin_stops_at_one_percent_of_its_initial_rate():
    s = LRSchedule(get_recipe("nin", plateau_patience=1), steps_per_epoch=2)
    for _ in range(10):
        s.epoch_end(0.5)
    assert s.drops == 2 and s.lr(0) == pytest.approx(0.01 * 0.01)


def test_plateau_ignores_gains_below_a_hundredth_of_a_percent():
    s = LRSchedule(get_recipe("alexnet", plateau_patience=2), steps_per_epoch=2)
    for top1 in (0.5, 0.50005, 0.50009):  # +0.005% and +0.009%: no real gain
        s.epoch_end(top1)
    assert s.drops == 1
    t = LRSchedule(get_recipe("alexnet", plateau_patience=2), steps_per_epoch=2)
    for top1 in (0.5, 0.5002, 0.5004):  # +0.02% each: two gains
        t.epoch_end(top1)
    assert t.drops == 0 and t.best == 0.5004


def test_other_schedules_ignore_epoch_end():
    s = LRSchedule(get_recipe("resnet_cifar", epochs=4), steps_per_epoch=2)
    for _ in range(20):
        s.epoch_end(0.1)
    assert s.state_dict() == {"drops": 0, "best": None, "bad_epochs": 0}


def test_a_plateau_state_round_trip_continues_identically():
    recipe = get_recipe("alexnet", plateau_patience=3)
    s = LRSchedule(recipe, steps_per_epoch=5)
    for top1 in (0.5, 0.6, 0.6, 0.59):  # best 0.6, two bad epochs so far, no drop yet
        s.epoch_end(top1)
    state = s.state_dict()
    assert state == {"drops": 0, "best": 0.6, "bad_epochs": 2}
    t = LRSchedule(recipe, steps_per_epoch=5)
    t.load_state_dict(state)
    assert t.state_dict() == state
    for top1 in (0.6, 0.62, 0.61, 0.61, 0.61):
        s.epoch_end(top1)
        t.epoch_end(top1)
        assert t.state_dict() == s.state_dict()
    assert s.drops == 2
    fresh = LRSchedule(recipe, steps_per_epoch=5)
    fresh.load_state_dict({"drops": 1, "best": None, "bad_epochs": 0})
    assert fresh.best is None and fresh.drops == 1
