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


# -- losses, top-k, threads, validation split, input size (cnnlab.train.loop) --------------


def test_every_aux_head_is_weighted_and_label_smoothed():
    from cnnlab.models.base import AuxOutput
    from cnnlab.train.loop import loss_fn

    torch.manual_seed(0)
    logits, a1, a2 = torch.randn(6, 5), torch.randn(6, 5), torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])

    def ce(z, eps):  # smoothed cross-entropy by hand: (1 - eps) NLL + eps * mean over classes of -log p
        logp = z.log_softmax(1)
        return ((1 - eps) * -logp[range(6), y] + eps * -logp.mean(1)).mean()

    loss, out = loss_fn(AuxOutput(logits, (a1, a2)), y, label_smoothing=0.2, aux_weights=(0.3, 0.5))
    assert out is logits
    assert torch.allclose(loss, ce(logits, 0.2) + 0.3 * ce(a1, 0.2) + 0.5 * ce(a2, 0.2))
    plain, out = loss_fn(logits, y, label_smoothing=0.0, aux_weights=(0.3,))  # a plain tensor has no aux heads
    assert out is logits and torch.allclose(plain, ce(logits, 0.0))


def test_topk_counts_by_hand_with_fewer_classes_than_k():
    from cnnlab.train.loop import _topk_correct

    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    y = torch.tensor([2, 1, 0, 2])  # ranked 3rd, 1st, 3rd, 3rd
    got = _topk_correct(logits, y, (1, 2, 5))  # only 3 classes: top-5 is every sample
    assert [int(c) for c in got] == [1, 1, 4]
    y = torch.tensor([1, 2, 1, 0])  # ranked 2nd, 2nd, 2nd, 2nd
    assert [int(c) for c in _topk_correct(logits, y, (1, 2))] == [0, 4]


@pytest.fixture
def eight_cores(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 0.0, 0.0))
    return os


def test_thread_count_by_hand_on_eight_cores(eight_cores, monkeypatch):
    from cnnlab.train.loop import SMALL_STEP_MACS, choose_threads

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert SMALL_STEP_MACS == 30e6
    # CUDA: at most 4 threads feed the GPU, from this process's share of the cores.
    assert choose_threads(10 ** 9, 256, cuda) == (4, "CUDA training: 4 CPU thread(s) feed the GPU")
    assert choose_threads(10 ** 9, 256, cuda, local_world_size=4)[0] == 2
    assert choose_threads(10 ** 9, 256, cuda, local_world_size=8)[0] == 1
    # A step is 3 x MACs per image x batch (forward + backward): 30 M is where a second thread pays.
    assert choose_threads(10 ** 6, 10, cpu, load=0.0)[0] == 8  # exactly 30 M
    threads, why = choose_threads(10 ** 6, 9, cpu, load=0.0)  # 27 M
    assert threads == 1 and "27 M MACs < 30 M" in why
    assert choose_threads(10 ** 7, 1, cpu, load=0.0)[0] == 8  # 30 M again, from one big image
    # Processes on the machine split its cores; each keeps at least one.
    assert choose_threads(10 ** 9, 64, cpu, local_world_size=3, load=0.0)[0] == 2
    assert choose_threads(10 ** 9, 64, cpu, local_world_size=8, load=0.0)[0] == 1
    assert choose_threads(10 ** 9, 64, cpu, local_world_size=16, load=0.0)[0] == 1
    # Cores the load average keeps busy (whole cores: int(load)) are left to the others.
    assert choose_threads(10 ** 9, 64, cpu, load=2.7)[0] == 6
    assert choose_threads(10 ** 9, 64, cpu, load=0.99) == (8, "8 of 8 cores for this process (192.00 G MACs per step)")
    assert choose_threads(10 ** 9, 64, cpu, load=7.5)[0] == 1
    assert choose_threads(10 ** 9, 64, cpu, load=40.0)[0] == 1
    assert choose_threads(10 ** 9, 64, cpu, local_world_size=2, load=3.0)[0] == 4  # 5 free, share 4
    assert choose_threads(10 ** 9, 64, cpu, local_world_size=2, load=5.0)[0] == 3
    threads, why = choose_threads(10 ** 9, 64, cpu)  # the load read from the machine: 3.2
    assert threads == 5 and "load average is 3.2" in why

    def no_load():
        raise OSError("no load average here")

    monkeypatch.setattr(eight_cores, "getloadavg", no_load)
    assert choose_threads(10 ** 9, 64, cpu)[0] == 8


def test_thread_count_without_sched_getaffinity(eight_cores, monkeypatch):
    from cnnlab.train.loop import choose_threads

    monkeypatch.delattr(eight_cores, "sched_getaffinity")
    monkeypatch.setattr(eight_cores, "cpu_count", lambda: 6)
    assert choose_threads(10 ** 9, 64, torch.device("cpu"), load=0.0)[0] == 6
    monkeypatch.setattr(eight_cores, "cpu_count", lambda: None)
    assert choose_threads(10 ** 9, 64, torch.device("cpu"), load=0.0)[0] == 1


class _Labelled:
    """The part of a dataset _split_validation uses: labels, classes, subset."""

    def __init__(self, labels, classes=("a", "b", "c"), index=None):
        self.labels, self.classes = torch.as_tensor(labels), list(classes)
        self.index = list(range(len(self.labels))) if index is None else index

    def subset(self, idx):
        return _Labelled(self.labels[idx], self.classes, [self.index[i] for i in idx])


def test_the_validation_split_holds_out_a_fraction_of_every_class():
    from cnnlab.train.loop import _split_validation

    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 20)[torch.randperm(35, generator=g)]
    train, val = _split_validation(_Labelled(labels), 0.2, seed=0)
    # round(0.2 n_c) of each class: 2 of 10, 1 of 5, 4 of 20
    assert torch.bincount(val.labels, minlength=3).tolist() == [2, 1, 4]
    assert torch.bincount(train.labels, minlength=3).tolist() == [8, 4, 16]
    assert sorted(train.index + val.index) == list(range(35))
    assert [labels[i] for i in val.index] == val.labels.tolist()
    again, val_again = _split_validation(_Labelled(labels), 0.2, seed=0)
    assert val_again.index == val.index  # seeded: the same split every time
    others = [_split_validation(_Labelled(labels), 0.2, seed=s)[1].index for s in (1, 2, 3)]
    assert any(o != val.index for o in others)


def test_the_validation_split_needs_an_image_on_each_side():
    from cnnlab.train.loop import _split_validation

    train, val = _split_validation(_Labelled([0, 1, 1, 2, 2], classes="abc"), 0.5, seed=0)
    assert len(val.labels) == 2 and len(train.labels) == 3  # round(0.5) = 0, round(1.0) = 1 each
    train, val = _split_validation(_Labelled([0, 0, 0, 1, 1, 1], classes="ab"), 0.2, seed=0)
    assert len(val.labels) == 2  # one of each: round(0.6)
    with pytest.raises(ValueError, match="holds out no image"):
        _split_validation(_Labelled([0, 0, 1, 1], classes="ab"), 0.1, seed=0)
    with pytest.raises(ValueError, match="leaves no training images"):
        _split_validation(_Labelled([0, 1], classes="ab"), 0.9, seed=0)


def test_the_input_size_comes_from_the_model_or_the_data():
    from cnnlab.train.loop import _input_size

    data = SimpleNamespace(channels=3, image_size=(28, 30))
    registered = nn.Identity()
    registered.model_info = SimpleNamespace(input_size=(3, 224, 224), name="net")
    assert _input_size(registered, data, None) == (3, 224, 224)
    assert _input_size(registered, data, 64) == (3, 64, 64)  # --image-size
    assert _input_size(nn.Identity(), data, None) == (3, 28, 30)  # nothing said: the data's
    plain = nn.Identity()
    plain.in_chans, plain.input_size = 1, (1, 8, 9)
    assert _input_size(plain, data, None) == (1, 8, 9)
    assert all(type(v) is int for v in _input_size(plain, SimpleNamespace(channels=1, image_size=(8.0, 8.0)), None))
    plain.min_input_size = 8
    assert _input_size(plain, data, 8) == (1, 8, 8)  # the minimum itself is allowed
    with pytest.raises(ValueError, match="needs inputs of at least 9x9 pixels; 8x9 is too small"):
        plain.min_input_size = 9
        _input_size(plain, data, None)
    with pytest.raises(ValueError, match="at least 10x10 pixels; 12x9 is too small"):
        plain.min_input_size, plain.input_size = 10, (1, 12, 9)  # only the width is short
        _input_size(plain, data, None)
    registered.min_input_size = 75
    with pytest.raises(ValueError, match="net needs inputs of at least 75x75"):
        _input_size(registered, data, 64)


def test_aux_weights_from_the_model_or_the_recipe():
    from cnnlab.train.loop import _aux_weights

    two = nn.Identity()
    two.aux_loss_weights = (0.3, 0.3)  # GoogLeNet's two heads
    assert _aux_weights(two, get_recipe("fast")) == (0.3, 0.3)
    assert _aux_weights(two, get_recipe("fast", aux_weight=0.5)) == (0.5, 0.5)  # the recipe's weight wins
    assert _aux_weights(nn.Identity(), get_recipe("fast")) == ()
    assert _aux_weights(nn.Identity(), get_recipe("fast", aux_weight=0.4)) == (0.4,)


# -- the number checks of recipes (Recipe.validate) and overrides (Recipe.replace) ----------

# field -> (values that must pass, values that must be refused); every bound from both sides.
BOUNDS = {
    "epochs": ([1, 500], [0, -1, 2.0, "3"]),
    "batch_size": ([1, 1024], [0, -8, 32.0]),
    "lr": ([1e-9, 0.1, 5], [0, -0.1, float("inf"), float("nan"), "0.1", True]),
    "momentum": ([0, 0.9, 0.999], [1, 1.5, -0.1]),
    "weight_decay": ([0, 5e-4], [-1e-9, float("inf")]),
    "eps": ([None, 1e-8, 1.0], [0, -1.0, float("nan")]),
    "rms_decay": ([0, 0.9], [1, -0.01]),
    "beta2": ([0, 0.999], [1, 1.2, -0.5]),
    "ema_decay": ([0, 0.9999], [1, -0.1]),
    "filter_rms_max": ([0, 0.1], [-0.1]),
    "val_fraction": ([0, 0.1, 0.99], [1, -0.1]),
    "gamma": ([1, 0.1, 1e-3], [0, 1.1, -0.1]),
    "step_epochs": ([0.5, 30.0], [0, -1.0]),
    "warmup_epochs": ([0, 1.5], [-0.1]),
    "warmup_lr": ([0, 0.01], [-0.01]),
    "label_smoothing": ([0, 0.1, 0.9], [1, -0.1]),
    "aux_weight": ([None, 0, 0.3], [-0.3, float("inf")]),
    "grad_clip": ([0, 2.0], [-1.0]),
    "crop_padding": ([0, 4], [-1]),
    "cutout": ([0, 16], [-1]),
    "pca_lighting": ([0, 0.1], [-0.1]),
    "max_drops": ([0, 2], [-1, 1.5]),
    "milestones": ([(1.0,), (0.5, 0.75), (0.5, 0.5), ()], [(0.0, 0.5), (0.5, 1.01), (0.75, 0.5), (-0.5,)]),
    "scale": ([(1.0, 1.0), (0.08, 1.0), (0.5, 0.5)], [(0.0, 1.0), (0.5, 0.4), (0.1, 1.1), (0.1,), (0.1, 0.5, 1.0)]),
    "schedule": (["constant", "step", "multistep", "cosine", "linear", "plateau"], ["exponential", "Cosine"]),
    "warmup": (["linear", "constant"], ["cosine"]),
    "padding_mode": (["constant", "reflect"], ["edge", "zeros"]),
    "plateau_metric": (["val", "train"], ["test"]),
    "optimizer": (["sgd", "NAdam", "adamw"], ["adam w", "", 3]),
    "optimizer_options": ([{}, {"momentum_decay": 0.004}], [{1: 2}, [("a", 1)]]),
}


@pytest.mark.parametrize("field", sorted(BOUNDS))
def test_each_recipe_number_is_checked_at_its_bounds(field):
    from cnnlab.train.recipes import Recipe

    good, bad = BOUNDS[field]
    for value in good:
        assert getattr(Recipe(**{field: value}), field) == value
    for value in bad:
        with pytest.raises(ValueError, match=f"recipe 'base': .*{field}") as exc:
            Recipe(**{field: value})
        assert len(str(exc.value).splitlines()) == 1, (field, value)


def test_the_recipe_checks_that_tie_fields_together():
    from cnnlab.train.recipes import Recipe

    with pytest.raises(ValueError, match="plateau schedule watches validation accuracy"):
        Recipe(schedule="plateau", val_fraction=0)
    assert Recipe(schedule="plateau", plateau_metric="train", val_fraction=0).val_fraction == 0  # NiN's rule
    assert Recipe(schedule="cosine", val_fraction=0).val_fraction == 0
    for name in ("sgd", "SGD"):  # optimizer names are matched without regard to case
        with pytest.raises(ValueError, match="nesterov needs a momentum > 0"):
            Recipe(optimizer=name, nesterov=True, momentum=0)
    assert Recipe(nesterov=True, momentum=0.5).nesterov
    assert Recipe(optimizer="rmsprop", nesterov=True, momentum=0).momentum == 0  # nesterov is SGD's flag only


@pytest.mark.parametrize("field, text, value", [
    ("epochs", "12", 12), ("epochs", 12.0, 12), ("lr", "0.05", 0.05), ("lr", 1, 1.0),
    ("flip", "true", True), ("flip", "YES", True), ("flip", "on", True), ("flip", "1", True), ("flip", 1, True),
    ("flip", "false", False), ("flip", "No", False), ("flip", "off", False), ("flip", "0", False), ("flip", 0, False),
    ("milestones", "0.25,0.5", (0.25, 0.5)), ("milestones", "0.3, 0.6, ", (0.3, 0.6)), ("milestones", [0.5], (0.5,)),
    ("scale", [0.2, 1], (0.2, 1.0)),
    ("aux_weight", "none", None), ("aux_weight", "None", None), ("aux_weight", None, None), ("aux_weight", "0.4", 0.4),
    ("eps", "1.0", 1.0), ("eps", "NONE", None),
    ("optimizer_options", '{"momentum_decay": 0.004}', {"momentum_decay": 0.004}),
    ("optimizer_options", {"lr_decay": 0.1}, {"lr_decay": 0.1}),
    ("schedule", "cosine", "cosine"),
])
def test_overrides_are_coerced_to_the_fields_type(field, text, value):
    got = getattr(get_recipe("resnet_cifar", **{field: text}), field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("field, text, message", [
    ("epochs", 2.5, "epochs must be an integer, got 2.5"),
    ("epochs", "ten", "epochs must be a int, got 'ten'"),
    ("epochs", True, "epochs must be a number, got True"),
    ("lr", False, "lr must be a number, got False"),
    ("lr", "fast", "lr must be a float, got 'fast'"),
    ("flip", "maybe", "flip must be true or false, got 'maybe'"),
    ("flip", 2, "flip must be true or false, got 2"),
    ("flip", 0.5, "flip must be true or false, got 0.5"),
    ("aux_weight", "heavy", "aux_weight must be a number, got 'heavy'"),
    ("milestones", "a,b", "milestones must be a tuple, got 'a,b'"),
    ("optimizer_options", "{not json", "optimizer_options must be a JSON object"),
    ("optimizer_options", "[1, 2]", "optimizer_options must be a dict, got \\[1, 2\\]"),
])
def test_overrides_that_cannot_be_coerced_name_the_field(field, text, message):
    with pytest.raises(ValueError, match=f"^recipe 'resnet_cifar': {message}"):
        get_recipe("resnet_cifar", **{field: text})


def test_unknown_recipe_names_suggest_close_ones():
    from cnnlab.train.recipes import UnknownRecipeError

    with pytest.raises(UnknownRecipeError, match=r"unknown recipe 'resnet_cifr'\. Did you mean: resnet_cifar"):
        get_recipe("resnet_cifr")
    with pytest.raises(UnknownRecipeError, match=r"unknown recipe 'zzz'\. Known recipes: lenet5, alexnet"):
        get_recipe("zzz")
    assert get_recipe("resnet_cifar") is not get_recipe("resnet_cifar")  # a fresh copy each time
    r = get_recipe("resnet_cifar", lr=0.05)
    assert r.lr == 0.05 and get_recipe("resnet_cifar").lr == 0.1


# -- the run settings (TrainConfig) ---------------------------------------------------------


def test_run_settings_are_checked_at_their_bounds(monkeypatch):
    import os

    from cnnlab.train.config import TrainConfig

    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    ok = dict(model="m", threads=12, image_size=1, train_samples=1, test_samples=1, split_seed=0,
              precision="bf16", device="cpu", progress="lines", trackers=("tensorboard",), optimizer_factory=len,
              freeze_backbone=True, pretrained=True)
    assert TrainConfig(**ok).validate().threads == 12  # 4 threads per logical CPU at most
    for field, value, message in [
        ("threads", 13, "threads must be at most 12 on this machine \\(3 logical CPUs\\), got 13"),
        ("threads", 0, "threads must be a positive integer, got 0"),
        ("threads", True, "threads must be a positive integer, got True"),
        ("image_size", 0, "image_size must be a positive integer"),
        ("image_size", 32.0, "image_size must be a positive integer"),
        ("train_samples", -5, "train_samples must be a positive integer"),
        ("test_samples", 0, "test_samples must be a positive integer"),
        ("split_seed", "7", "split_seed must be an integer"),
        ("split_seed", False, "split_seed must be an integer"),
        ("precision", "fp8", "precision must be one of fp32, bf16, fp16, got 'fp8'"),
        ("device", "tpu", "device must be one of auto, cpu, cuda, got 'tpu'"),
        ("progress", "quiet", "progress must be one of auto, bar, lines, none, got 'quiet'"),
        ("trackers", ("jsonl", "mlflow", "neptune"), "unknown tracker\\(s\\) mlflow, neptune; choose from jsonl, "),
        ("optimizer_factory", "sgd", "optimizer_factory must be a callable"),
        ("pretrained", None, "freeze_backbone needs pretrained weights"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}"):
            TrainConfig(**{**ok, field: value}).validate()
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: counted as one CPU
    with pytest.raises(ValueError, match="at most 4 on this machine \\(1 logical CPUs\\)"):
        TrainConfig(model="m", threads=5).validate()
    assert TrainConfig(model="m", threads=4, split_seed=3).validate().split_seed == 3


def test_run_settings_round_trip_through_json():
    import json

    from cnnlab.train.config import TrainConfig

    def factory(groups):
        return None

    cfg = TrainConfig(model="m", dataset="digits", recipe="fast", overrides={"lr": 0.05}, trackers=("tensorboard",),
                      threads=2, split_seed=4, optimizer_factory=factory, data_options={"channels": 1})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["trackers"] == ["tensorboard"] and d["optimizer_factory"].endswith("factory")
    assert cfg.to_dict()["trackers"] == ["tensorboard"]  # a list before JSON too
    import functools

    partial = functools.partial(factory)  # no __qualname__: its repr is recorded
    assert TrainConfig(model="m", optimizer_factory=partial).to_dict()["optimizer_factory"] == repr(partial)
    assert "optimizer_factory" not in TrainConfig(model="m").to_dict()
    back = TrainConfig.from_dict({**d, "added_by_a_later_version": 1})
    assert back == TrainConfig(**{**cfg.__dict__, "optimizer_factory": None})  # the factory is not saved
    assert back.trackers == ("tensorboard",) and TrainConfig.from_dict({"model": "m"}).trackers == ()


# -- resuming keeps the run's settings (loop._resume_config) --------------------------------


def test_a_resumed_run_keeps_its_settings_and_takes_only_how_to_run_from_the_command():
    import dataclasses

    from cnnlab.train.config import TrainConfig
    from cnnlab.train.loop import _resume_config

    stored = TrainConfig(model="lenet5", dataset="digits", recipe="fast", overrides={"lr": 0.05, "epochs": 3},
                         seed=7, split_seed=2, threads=2, train_samples=100, precision="bf16", out="old",
                         device="cpu", progress="lines", num_workers=1).to_dict()
    factory = lambda groups: None  # noqa: E731
    asked = TrainConfig(model="lenet5", overrides={"epochs": 5, "lr": 0.05}, out="runs/x", resume=True,
                        device="auto", progress="none", trackers=("tensorboard",), num_workers=0, data_dir="d",
                        download=False, optimizer_factory=factory, seed=99, precision="fp16", train_samples=5)
    cfg = _resume_config(asked, stored)
    # the run's own settings ...
    assert (cfg.dataset, cfg.recipe, cfg.seed, cfg.split_seed, cfg.precision, cfg.train_samples) == (
        "digits", "fast", 7, 2, "bf16", 100)
    assert cfg.overrides == {"lr": 0.05, "epochs": 5}  # ... but epochs may be extended
    # ... how to run it from the command
    runtime = ("out", "resume", "device", "progress", "trackers", "num_workers", "data_dir", "download",
               "optimizer_factory")
    assert {k: getattr(cfg, k) for k in runtime} == {k: getattr(asked, k) for k in runtime}
    assert cfg.threads == 2  # the automatic count is kept ...
    assert _resume_config(dataclasses.replace(asked, threads=1), stored).threads == 1  # ... unless given
    assert _resume_config(TrainConfig(model="lenet5"), stored).overrides == {"lr": 0.05, "epochs": 3}
    for change, message in [
        ({"model": "alexnet"}, "trains lenet5, not alexnet"),
        ({"dataset": "mnist"}, "uses dataset 'digits', not 'mnist'"),
        ({"recipe": "lenet5"}, "uses recipe 'fast', not 'lenet5'"),
        ({"overrides": {"lr": 0.1}}, "lr differs from the run being resumed \\(0.1 vs 0.05\\)"),
        ({"overrides": {"batch_size": 64}}, "batch_size differs .*\\(64 vs 256\\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            _resume_config(dataclasses.replace(asked, **change), stored)
    same = _resume_config(dataclasses.replace(asked, overrides={"batch_size": "256", "momentum": 0.9}), stored)
    assert same.overrides == {"lr": 0.05, "epochs": 3}  # a value equal to the run's is no change


# -- one optimization step (loop._Optimization) ---------------------------------------------


def _optimization(model, **overrides):
    from cnnlab.train.loop import _Optimization

    recipe = get_recipe("fast", **{"schedule": "constant", "warmup_epochs": 0, "lr": 0.1, "momentum": 0.0,
                                   "nesterov": False, "weight_decay": 0.0, "epochs": 2, **overrides})
    return _Optimization(model, recipe, steps_per_epoch=5, precision="fp32", device=torch.device("cpu"),
                         factory=None)


@pytest.mark.parametrize("clip", [0.0, 1.0, 1e6])
def test_a_step_is_plain_sgd_on_the_gradient_clipped_to_the_recipes_norm(clip):
    model = nn.Linear(3, 2)
    w0 = [p.detach().clone() for p in model.parameters()]
    x = torch.tensor([[1.0, -2.0, 3.0]])
    loss = (model(x) * torch.tensor([[40.0, -30.0]])).sum()  # gradient norm ~190
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    norm = torch.cat([g.flatten() for g in grads]).norm()
    scale = min(1.0, clip / (float(norm) + 1e-6)) if clip > 0 else 1.0  # torch's clip_grad_norm_
    opt = _optimization(model, grad_clip=clip)
    assert opt.before_step(0) == pytest.approx(0.1)
    opt.step(loss)
    for p, p0, g in zip(model.parameters(), w0, grads):
        assert torch.allclose(p.detach(), p0 - 0.1 * scale * g, atol=1e-6)
    if clip == 1.0:  # the step really was clipped: it moved the weights by lr x 1
        moved = torch.cat([(p.detach() - p0).flatten() for p, p0 in zip(model.parameters(), w0)]).norm()
        assert float(moved) == pytest.approx(0.1, rel=1e-4)


class _Ramped(nn.Linear):
    def __init__(self):
        super().__init__(2, 2)
        self.progress = []

    def set_drop_path_progress(self, p):
        self.progress.append(p)


def test_drop_path_progress_is_the_fraction_of_training_done():
    model = _Ramped()
    opt = _optimization(model)  # 2 epochs x 5 steps
    for step in (0, 3, 9):
        opt.before_step(step)
    assert model.progress == pytest.approx([0.0, 0.3, 0.9])


def test_the_moving_average_is_what_is_evaluated_and_it_round_trips():
    torch.manual_seed(0)
    model = nn.Linear(2, 1, bias=False)
    opt = _optimization(model, ema_decay=0.5, momentum=0.9)
    assert opt.eval_model(model) is opt.ema.module
    seen = []
    for step in range(3):
        opt.before_step(step)
        opt.step((model(torch.ones(1, 2)) ** 2).sum())
        seen.append(model.weight.detach().clone())
    # n = 0: a copy; then decay min(0.5, (1 + n) / (10 + n)) = 2/11, 3/12
    expected = seen[0]
    for n, w in ((1, seen[1]), (2, seen[2])):
        d = (1 + n) / (10 + n)
        expected = d * expected + (1 - d) * w
    assert torch.allclose(opt.ema.module.weight, expected)

    import io

    buffer = io.BytesIO()  # through bytes, as a checkpoint does (the state holds live tensors)
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["scaler"] == {} and state["schedule"] == {"drops": 0, "best": None, "bad_epochs": 0}
    twin = nn.Linear(2, 1, bias=False)
    twin.load_state_dict(model.state_dict())
    other = _optimization(twin, ema_decay=0.5, momentum=0.9)
    other.load_state_dict(state)
    assert torch.allclose(other.ema.module.weight, expected)
    # the momentum buffer came back too: the next steps agree
    for o, m in ((other, twin), (opt, model)):
        o.before_step(3)
        o.step((m(torch.ones(1, 2)) ** 2).sum())
    assert torch.equal(twin.weight, model.weight) and torch.equal(other.ema.module.weight, opt.ema.module.weight)
    plain = _optimization(nn.Linear(2, 1))
    assert plain.ema is None and plain.eval_model(model) is model and plain.state_dict()["ema"] == {}


# -- optimizers from recipes (cnnlab.train.optim) -------------------------------------------


class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)  # 4-D weight, 1-D bias
        self.bn = nn.BatchNorm2d(3)  # 1-D scale and shift
        self.fc = nn.Linear(3, 2, bias=False)  # 2-D weight only
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_parameter_groups_by_hand():
    from cnnlab.train.optim import param_groups

    m = _Mixed()
    matrices, vectors = [m.conv.weight, m.fc.weight], [m.conv.bias, m.bn.weight, m.bn.bias]
    (one,) = param_groups(m, 1e-4)
    assert one["weight_decay"] == 1e-4 and {id(p) for p in one["params"]} == {id(p) for p in matrices + vectors}
    decay, free = param_groups(m, 5e-4, decay_norm_and_bias=False)
    assert [id(p) for p in decay["params"]] == [id(p) for p in matrices] and decay["weight_decay"] == 5e-4
    assert [id(p) for p in free["params"]] == [id(p) for p in vectors] and free["weight_decay"] == 0.0
    (only,) = param_groups(m, 0.0, decay_norm_and_bias=False)  # no decay at all: one group
    assert only["weight_decay"] == 0.0 and len(only["params"]) == 5
    (weights,) = param_groups(nn.Linear(3, 3, bias=False), 1e-4, decay_norm_and_bias=False)  # no 1-D parameter
    assert weights["weight_decay"] == 1e-4
    (vector,) = param_groups(nn.BatchNorm1d(3, affine=True).requires_grad_(True), 1e-4, decay_norm_and_bias=False)
    assert vector["weight_decay"] == 0.0 and len(vector["params"]) == 2
    with pytest.raises(ValueError, match="the model has no trainable parameters"):
        param_groups(m.frozen, 1e-4)


def test_recipe_fields_reach_torch_optim():
    from cnnlab.train.optim import build_optimizer

    m = nn.Linear(2, 2)

    def built(**overrides):
        opt = build_optimizer(m, get_recipe("fast", **overrides))
        return type(opt).__name__, opt.defaults

    name, d = built(optimizer="SGD", lr=0.3, momentum=0.8, nesterov=True)  # the name in any case
    assert (name, d["lr"], d["momentum"], d["nesterov"]) == ("SGD", 0.3, 0.8, True)
    name, d = built(optimizer="sgd", nesterov=False, optimizer_options={"dampening": 0.1, "momentum": 0.5})
    assert (d["momentum"], d["nesterov"], d["dampening"]) == (0.5, False, 0.1)  # options win over fields
    name, d = built(optimizer="rmsprop", rms_decay=0.95, momentum=0.3, eps=0.5)
    assert (name, d["alpha"], d["momentum"], d["eps"]) == ("RMSprop", 0.95, 0.3, 0.5)
    name, d = built(optimizer="RMSprop", eps=None)
    assert (d["eps"], d["alpha"]) == (torch.optim.RMSprop([nn.Parameter(torch.zeros(1))]).defaults["eps"], 0.9)
    name, d = built(optimizer="adam", momentum=0.85, beta2=0.95, eps=1e-6)
    assert (name, d["betas"], d["eps"]) == ("Adam", (0.85, 0.95), 1e-6)
    name, d = built(optimizer="AdamW", momentum=0.9, beta2=0.98, eps=None)
    assert (name, d["betas"], d["eps"]) == ("AdamW", (0.9, 0.98), 1e-8)
    name, d = built(optimizer="adagrad", lr=0.05, optimizer_options={"lr_decay": 0.01})
    assert (name, d["lr"], d["lr_decay"]) == ("Adagrad", 0.05, 0.01)
    with pytest.raises(ValueError, match=r"optimizer Adagrad does not take the options \['momentum'\]"):
        built(optimizer="adagrad", optimizer_options={"momentum": 0.9})


def test_optimizer_names_are_torch_optims_in_any_case():
    from cnnlab.train.optim import optimizer_class

    assert optimizer_class("adamw") is torch.optim.AdamW and optimizer_class("ADAMW") is torch.optim.AdamW
    assert optimizer_class("Sgd") is torch.optim.SGD and optimizer_class("lbfgs") is torch.optim.LBFGS
    with pytest.raises(ValueError, match=r"unknown optimizer 'Optimizer'; choose one of torch.optim's: ASGD, Adadelta"):
        optimizer_class("Optimizer")  # the base class is no optimizer


def test_the_averaging_decay_warms_up_like_tensorflows():
    from cnnlab.train.optim import ema_decay_at

    # TensorFlow's ExponentialMovingAverage(num_updates=n): min(decay, (1 + n) / (10 + n))
    assert [ema_decay_at(0.9999, n) for n in (0, 1, 2, 90)] == pytest.approx([1 / 10, 2 / 11, 3 / 12, 91 / 100])
    assert ema_decay_at(0.5, 5) == pytest.approx(0.4) and ema_decay_at(0.5, 9) == 0.5


def test_the_moving_average_covers_batchnorm_statistics():
    from cnnlab.train.optim import make_ema

    bn = nn.BatchNorm1d(2)
    ema = make_ema(bn, 0.9)
    with torch.no_grad():
        bn.running_mean.fill_(1.0)
        bn.num_batches_tracked.fill_(7)
    ema.update_parameters(bn)  # the first update copies
    assert torch.equal(ema.module.running_mean, torch.ones(2)) and int(ema.module.num_batches_tracked) == 7
    with torch.no_grad():
        bn.running_mean.fill_(3.0)
        bn.num_batches_tracked.fill_(9)
    ema.update_parameters(bn)
    d = 2 / 11  # min(0.9, (1 + 1) / (10 + 1))
    assert torch.allclose(ema.module.running_mean, torch.full((2,), d * 1.0 + (1 - d) * 3.0))
    assert int(ema.module.num_batches_tracked) == 9  # an integer counter follows the model, unaveraged


def test_optimization_state_loading_scaler_mismatch_and_a_missing_average():
    from cnnlab.train.loop import _Optimization

    def fp16(model):
        return _Optimization(model, get_recipe("fast"), steps_per_epoch=2, precision="fp16",
                             device=torch.device("cpu"), factory=None)

    state = fp16(nn.Linear(2, 2)).state_dict()
    assert state["scaler"]["scale"] == 65536.0
    state["scaler"]["scale"] = 128.0  # fp16 loss scaling moved away from its start
    b = fp16(nn.Linear(2, 2))
    b.load_state_dict(state)
    assert b.scaler.get_scale() == 128.0
    averaged = _optimization(nn.Linear(2, 2), ema_decay=0.5).state_dict()
    plain = _optimization(nn.Linear(2, 2))
    plain.load_state_dict(averaged)  # a stored average the run no longer keeps is ignored
    assert plain.ema is None
    with pytest.raises(ValueError, match="^--resume: the optimizer state in the checkpoint does not fit: "):
        _optimization(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))).load_state_dict(averaged)


# -- rebuilding a trained model (inference.model_from_checkpoint) ---------------------------


def test_a_checkpoint_rebuilds_its_model_with_the_averaged_weights_when_it_kept_them():
    from cnnlab.registry import create_model
    from cnnlab.train.checkpoint import CheckpointError
    from cnnlab.train.inference import model_from_checkpoint

    torch.manual_seed(0)
    raw = create_model("lenet5", num_classes=7).state_dict()
    averaged = {f"module.{k}": v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    meta = {"model": "lenet5", "num_classes": 7}
    plain = model_from_checkpoint({"meta": meta, "model": raw})
    assert not plain.training and all(torch.equal(plain.state_dict()[k], v) for k, v in raw.items())
    ema = model_from_checkpoint({"meta": meta, "model": raw, "ema": {**averaged, "n_averaged": torch.tensor(3)}})
    assert all(torch.equal(ema.state_dict()[k], averaged[f"module.{k}"]) for k in raw)
    assert model_from_checkpoint({"meta": meta, "model": raw, "ema": {}}).state_dict().keys() == raw.keys()
    with pytest.raises(CheckpointError, match="holds a custom model \\('lenet5'\\)"):
        model_from_checkpoint({"meta": {**meta, "registered": False}, "model": raw})
    with pytest.raises(CheckpointError, match="holds a custom model \\('tinynet'\\)"):
        model_from_checkpoint({"meta": {**meta, "model": "tinynet"}, "model": raw})
    with pytest.raises(CheckpointError, match="the checkpoint's weights do not fit lenet5: size mismatch for "):
        model_from_checkpoint({"meta": {**meta, "num_classes": 10}, "model": raw})


def test_a_model_without_its_papers_recipe_gets_its_familys_or_its_datasets(monkeypatch):
    import cnnlab.registry
    from cnnlab.train.recipes import default_dataset, recipe_for_model, recipe_note

    infos = {"mynet": ("resnet", "cifar"), "tinyconv": ("other", "mnist"), "bignet": ("other", "imagenet"),
             "seresnet_x": ("senet", "imagenet"), "se_small": ("senet", "cifar")}
    monkeypatch.setattr(cnnlab.registry, "model_info",
                        lambda name: SimpleNamespace(family=infos[name][0], dataset=infos[name][1]))
    assert recipe_for_model("mynet").name == "resnet_cifar"
    assert recipe_note("mynet") == ("no recipe from mynet's own paper is registered; it trains with resnet_cifar, "
                                    "the recipe for resnet models on cifar-sized data")
    assert recipe_for_model("tinyconv").name == "lenet5" and default_dataset("tinyconv") == "mnist_5k"
    assert recipe_for_model("bignet", epochs=3).epochs == 3 and default_dataset("bignet") == "imagefolder"
    assert recipe_for_model("bignet").name == "resnet_imagenet" and default_dataset("mynet") == "cifar10"
    assert recipe_for_model("seresnet_x").name == "senet" and recipe_note("seresnet_x") == ""  # se* on ImageNet
    assert recipe_for_model("se_small").name == "resnet_cifar"  # ... but not on CIFAR


def test_fp16_loss_scaling_clips_the_unscaled_gradient():
    model = nn.Linear(3, 2)
    w0 = [p.detach().clone() for p in model.parameters()]
    loss = (model(torch.tensor([[1.0, -2.0, 3.0]])) * torch.tensor([[40.0, -30.0]])).sum()
    opt = _optimization(model, grad_clip=1.0)
    opt.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # as precision="fp16" builds it
    opt.before_step(0)
    opt.step(loss)
    moved = torch.cat([(p.detach() - p0).flatten() for p, p0 in zip(model.parameters(), w0)]).norm()
    assert float(moved) == pytest.approx(0.1, rel=1e-4)  # lr x the clipped norm 1, not scaled by 1024
