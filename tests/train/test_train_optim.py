"""Optimizers come from torch.optim; weight decay, averaging, drop-path scheduling and
filter renormalization are checked end to end through ``fit`` (the code path of
``cnnlab train``), against hand computations and against torch.optim built by hand."""
import json

import pytest
import torch
from torch import nn

from cnnlab.train import fit, get_recipe, load_checkpoint
from cnnlab.train.loop import evaluate, make_optimizer
from cnnlab.train.optim import optimizer_class
from train_testkit import DATASET, AuxNet, TinyNet


class ZeroGradNet(TinyNet):
    """TinyNet whose scores are multiplied by zero: every parameter's gradient is exactly 0,
    so one optimizer step moves the weights by weight decay alone."""

    def forward(self, x):
        return super().forward(x) * 0.0


class ProgressNet(TinyNet):
    def __init__(self):
        super().__init__()
        self.progress = []

    def set_drop_path_progress(self, p):
        self.progress.append(p)


def _one_step(model, tmp_path, **kw):
    kw = {"recipe": "fast", "epochs": 1, "batch_size": 32, "train_samples": 32 + 4, "val_fraction": 0.1,
          "test_samples": 16, "progress": "none", "schedule": "constant", "warmup_epochs": 0, **kw}
    return fit(model, DATASET, out=str(tmp_path / "run"), **kw)


@pytest.mark.parametrize("decay_norm_and_bias", [False, True])
def test_weight_decay_end_to_end(tmp_path, decay_norm_and_bias):
    torch.manual_seed(0)
    model = ZeroGradNet()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, wd = 0.1, 0.01
    results = _one_step(model, tmp_path, lr=lr, weight_decay=wd, nesterov=False, momentum=0.9,
                        decay_norm_and_bias=decay_norm_and_bias)
    assert results["steps"] == 1
    for name, p in model.named_parameters():
        decayed = decay_norm_and_bias or p.ndim > 1
        expected = before[name] * (1 - lr * wd) if decayed else before[name]
        assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-7), name
        if decayed and before[name].abs().sum() > 0:
            assert not torch.equal(p.detach(), before[name]), name  # decay really happened

    # torch.optim built by hand the same way takes the same step.
    torch.manual_seed(0)
    twin = ZeroGradNet()
    groups = [{"params": [p for p in twin.parameters() if decay_norm_and_bias or p.ndim > 1], "weight_decay": wd}]
    if not decay_norm_and_bias:
        groups.append({"params": [p for p in twin.parameters() if p.ndim <= 1], "weight_decay": 0.0})
    ref = torch.optim.SGD(groups, lr=lr, momentum=0.9)
    for p in twin.parameters():
        p.grad = torch.zeros_like(p)
    ref.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7), name


def test_optimizers_come_from_torch_optim():
    model = TinyNet()
    sgd = make_optimizer(model, get_recipe("wide_resnet"))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["nesterov"] and len(sgd.param_groups) == 1
    fast = make_optimizer(model, get_recipe("fast"))  # no decay on BatchNorm and biases
    decayed, free = fast.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])
    assert free["weight_decay"] == 0 and decayed["weight_decay"] == 5e-4
    rms = make_optimizer(model, get_recipe("inception_v3"))
    assert type(rms) is torch.optim.RMSprop
    assert (rms.defaults["alpha"], rms.defaults["eps"], rms.param_groups[0]["weight_decay"]) == (0.9, 1.0, 4e-5)
    adam = make_optimizer(model, get_recipe("lenet5"))
    adamw = make_optimizer(model, get_recipe("fast", optimizer="adamw", lr=1e-3, beta2=0.99))
    assert type(adam) is torch.optim.Adam and type(adamw) is torch.optim.AdamW
    assert adamw.defaults["betas"] == (0.9, 0.99)
    nadam = make_optimizer(model, get_recipe("fast", optimizer="NAdam", optimizer_options={"momentum_decay": 0.005}))
    assert type(nadam) is torch.optim.NAdam and nadam.defaults["momentum_decay"] == 0.005
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'.*SGD"):
        optimizer_class("sgdd")
    with pytest.raises(ValueError, match="does not take"):
        make_optimizer(model, get_recipe("fast", optimizer="adagrad", optimizer_options={"betas": [0.9, 0.9]}))


def test_an_optimizer_factory_trains(tmp_path):
    calls = []

    def factory(groups):
        calls.append([g["weight_decay"] for g in groups])
        return torch.optim.Adagrad(groups, lr=0.01)

    results = _one_step(TinyNet(), tmp_path, optimizer=factory)
    assert calls == [[5e-4, 0.0]] and results["steps"] == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["optimizer"] == "custom" and "factory" in config["config"]["optimizer_factory"]
    with pytest.raises(TypeError, match="not a torch.optim.Optimizer"):
        _one_step(TinyNet(), tmp_path / "b", optimizer=lambda groups: object())
    with pytest.raises(ValueError, match="unknown optimizer"):
        _one_step(TinyNet(), tmp_path / "c", optimizer="lion9")


def test_topk_by_hand_with_the_target_ranked_third():
    class Fixed(nn.Module):
        def forward(self, x):
            # class 2 ranks 3rd for every sample: scores 5, 4, 3, 2, 1, 0 for classes 0, 1, 2, ...
            return torch.arange(6, 0, -1, dtype=torch.float32).expand(x.shape[0], 6).clone()

    target = torch.tensor([2, 2, 0, 5])  # third, third, first, sixth
    loader = [(torch.zeros(4, 1), target)]
    r = evaluate(Fixed(), loader, device=torch.device("cpu"))
    assert r["top1"] == 0.25 and r["top5"] == 0.75 and r["samples"] == 4
    logp = torch.log_softmax(torch.arange(6, 0, -1, dtype=torch.float64), 0)
    assert r["loss"] == pytest.approx(float(-(2 * logp[2] + logp[0] + logp[5]) / 4))


def test_aux_weight_zero_leaves_the_aux_head_untouched(tmp_path):
    torch.manual_seed(0)
    model = AuxNet()
    before = model.aux.weight.detach().clone()
    _one_step(model, tmp_path, aux_weight=0.0, weight_decay=0.0, epochs=2)
    assert torch.equal(before, model.aux.weight.detach())
    model = AuxNet()
    before = model.aux.weight.detach().clone()
    _one_step(model, tmp_path / "b", aux_weight=0.3, weight_decay=0.0, epochs=2)
    assert not torch.equal(before, model.aux.weight.detach())


def test_ema_weights_are_what_is_evaluated_and_saved(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    results = _one_step(model, tmp_path, ema_decay=0.5, epochs=2, train_samples=100)
    assert results["evaluated_weights"] == "exponential moving average"
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    ema = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    assert set(ema) == set(state["model"]) and int(state["ema"]["n_averaged"]) == results["steps"]
    assert any(not torch.equal(ema[k], state["model"][k]) for k in ema if ema[k].is_floating_point())
    # The evaluation used the averaged weights: rebuilding them gives the reported test accuracy.
    from cnnlab.data import load_dataset, make_loader

    twin = TinyNet()
    twin.load_state_dict(ema)
    test = load_dataset(DATASET, "test")
    test = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(1))[:16].sort().values)
    r = evaluate(twin, make_loader(test, batch_size=256, train=False, input_size=(1, 8, 8)), device=torch.device("cpu"))
    assert r["top1"] == results["test"]["top1"]


def test_drop_path_is_ramped_over_training(tmp_path):
    model = ProgressNet()
    results = _one_step(model, tmp_path, epochs=2, train_samples=100, batch_size=16)
    steps = results["steps"]
    assert model.progress == pytest.approx([s / steps for s in range(steps)])


def test_filter_renormalization_caps_the_rms(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.features[0].weight.mul_(10)  # RMS far above the cap
    _one_step(model, tmp_path, filter_rms_max=0.1, lr=0.01)
    w = model.features[0].weight.detach()
    rms = w.square().mean(dim=(1, 2, 3)).sqrt()
    assert torch.all(rms <= 0.1 + 1e-6) and torch.allclose(rms.max(), torch.tensor(0.1), atol=1e-5)


def test_ema_follows_the_tensorflow_warmup_by_hand():
    from cnnlab.train.optim import ema_decay_at, make_ema

    w = nn.Linear(1, 1, bias=False)
    ema = make_ema(w, 0.9)
    values = [1.0, 3.0, 7.0, 2.0]
    expected = None
    for n, v in enumerate(values):
        with torch.no_grad():
            w.weight.fill_(v)
        ema.update_parameters(w)
        if expected is None:
            expected = v  # the first update copies the weights
        else:
            d = min(0.9, (1 + n) / (10 + n))  # n updates averaged so far
            expected = d * expected + (1 - d) * v
    assert ema.module.weight.item() == pytest.approx(expected)
    assert ema_decay_at(0.9999, 0) == pytest.approx(0.1) and ema_decay_at(0.9, 10 ** 6) == 0.9


def test_thread_choice_follows_the_work_and_the_load():
    from cnnlab.train.loop import SMALL_STEP_MACS, choose_threads

    cpu = torch.device("cpu")
    cores = len(__import__("os").sched_getaffinity(0))
    small, why = choose_threads(400_000, 16, cpu, load=0.0)  # LeNet-5 at batch 16
    assert small == 1 and ("small step" in why or cores == 1)
    big, _ = choose_threads(int(SMALL_STEP_MACS), 128, cpu, load=0.0)
    assert big == cores
    shared, _ = choose_threads(int(SMALL_STEP_MACS), 128, cpu, local_world_size=cores, load=0.0)
    assert shared == 1
    if cores > 1:
        busy, why = choose_threads(int(SMALL_STEP_MACS), 128, cpu, load=cores - 0.5)
        assert busy == 1 and "load average" in why
        half, _ = choose_threads(int(SMALL_STEP_MACS), 128, cpu, load=1.2)
        assert half == max(1, cores - 1)


@pytest.mark.parametrize("recipe", ["inception_v3", "nasnet_imagenet", "senet", "nin", "zfnet"])
def test_the_papers_recipes_train_end_to_end(tmp_path, recipe):
    torch.manual_seed(0)
    model = AuxNet()
    before = [p.detach().clone() for p in model.parameters()]
    results = fit(model, DATASET, recipe=recipe, epochs=2, batch_size=32, train_samples=100, test_samples=32,
                  random_resized_crop=False, progress="none", out=str(tmp_path / "run"))
    val = results["val"]["samples"]  # 10% of each class, rounded per class
    assert 7 <= val <= 13 and results["steps"] == 2 * ((100 - val) // 32)
    assert all(p.isfinite().all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["name"] == recipe
