"""Stochastic depth (Huang et al. 2016) on the residual family: linear decay of the
survival probabilities, one draw per block per mini-batch, dropped blocks skip their
branch entirely, no drops in evaluation, and evaluation = expectation over the drops."""
import math

import pytest
import torch

import cnnlab
from cnnlab.models.resnet import PreActBasicBlock, ResNet


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: thread start-up would dominate (and stall on a busy 2-core machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small(drop_path_rate=0.5, preact=False):
    return ResNet("basic", (2, 2, 2), widths=(4, 8, 16), stem="cifar", stem_width=4, shortcut="A",
                  preact=preact, drop_path_rate=drop_path_rate, num_classes=3)


def _record_branch_calls(model):
    """Per block, the batch sizes its branch's first conv saw in each forward."""
    calls = {i: [] for i in range(len(model.residual_blocks()))}
    for i, blk in enumerate(model.residual_blocks()):
        blk.conv1.register_forward_hook(lambda m, inp, out, i=i: calls[i].append(inp[0].shape[0]))
    return calls


def test_survival_follows_the_linear_decay():
    model = cnnlab.create_model("resnet110_sd")
    blocks = model.residual_blocks()
    L = len(blocks)
    assert L == 54  # 110 = 6 * 18 + 2
    for l, blk in enumerate(blocks, start=1):
        assert blk.survival == pytest.approx(1 - l / L * (1 - 0.5), abs=1e-12)
    assert blocks[-1].survival == pytest.approx(0.5)
    assert all(b.survival == 1.0 for b in cnnlab.create_model("resnet110").residual_blocks())
    # any residual net takes the switch, e.g. a wide ResNet with p_L = 0.8
    wrn = cnnlab.create_model("wrn16_8", drop_path_rate=0.2).residual_blocks()
    assert [b.survival for b in wrn] == pytest.approx([1 - l / 6 * 0.2 for l in range(1, 7)])


@pytest.mark.parametrize("preact", [False, True])
def test_dropped_blocks_skip_their_branch_once_per_batch(preact):
    torch.manual_seed(0)
    model = _small(0.5, preact=preact).train()
    calls = _record_branch_calls(model)
    batch, steps = 3, 150
    for _ in range(steps):
        model(torch.randn(batch, 3, 8, 8))
    survival = [b.survival for b in model.residual_blocks()]
    for i, seen in calls.items():
        # the branch runs at most once per forward, on the whole batch: one draw per block per batch
        assert all(n == batch for n in seen)
        kept = len(seen)
        sigma = math.sqrt(steps * survival[i] * (1 - survival[i]))
        assert abs(kept - steps * survival[i]) < 4 * sigma, (i, kept, survival[i])
    # the deepest block (p_L = 0.5) was dropped in some steps
    assert len(calls[len(calls) - 1]) < steps


def test_no_drops_in_eval():
    model = _small(0.9).eval()
    calls = _record_branch_calls(model)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        first = model(x)
        for _ in range(20):
            torch.testing.assert_close(model(x), first)
    assert all(len(seen) == 21 for seen in calls.values())


def test_a_dropped_block_returns_its_shortcut():
    torch.manual_seed(0)
    model = _small(0.9).train()
    blk = model.residual_blocks()[2]  # first block of stage 2: option A 4 -> 8, stride 2
    fired = []
    blk.conv1.register_forward_hook(lambda *a: fired.append(1))
    x = torch.relu(torch.randn(2, 4, 8, 8))
    for _ in range(50):
        fired.clear()
        y = blk(x)
        if not fired:
            break
    assert not fired, "block never dropped at survival %.2f" % blk.survival
    want = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 4, 4)], dim=1)
    torch.testing.assert_close(y, want)


def test_eval_output_is_the_expectation_over_drops():
    """A pre-activation unit y = shortcut + b F(x) is linear in the Bernoulli b. With its
    BatchNorms frozen, F is the same function in training and evaluation, so
    E[y] = p F(x) + shortcut must equal the evaluation output exactly."""
    torch.manual_seed(0)
    p = 0.3
    blk = PreActBasicBlock(4, 8, 2, shortcut="B", survival=p)
    for m in blk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 4, 6, 6)
    blk.eval()
    with torch.no_grad():
        y_eval = blk(x)
    blk.train()
    for m in blk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()  # freeze the statistics: F no longer depends on the mode
    fired = []
    blk.conv1.register_forward_hook(lambda *a: fired.append(1))
    outcomes, kept = {}, 0
    n = 400
    with torch.no_grad():
        for _ in range(n):
            fired.clear()
            y = blk(x)
            outcomes[bool(fired)] = y
            kept += bool(fired)
    assert set(outcomes) == {True, False}
    expectation = p * outcomes[True] + (1 - p) * outcomes[False]
    torch.testing.assert_close(y_eval, expectation, rtol=1e-5, atol=1e-6)
    assert abs(kept / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_dropped_branches_still_get_a_zero_gradient():
    """The DDP guarantee: every parameter is in the graph each step, a dropped branch's
    gradient is exactly zero, and no convolution of it ran."""
    torch.manual_seed(3)
    model = _small(0.9).train()
    calls = _record_branch_calls(model)
    model(torch.randn(2, 3, 8, 8)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    dropped = [i for i, seen in calls.items() if not seen]
    assert dropped, "expected some dropped blocks at p_L = 0.1"
    for i in dropped:
        blk = model.residual_blocks()[i]
        assert all((p.grad == 0).all() for p in blk.parameters())
    kept = [i for i, seen in calls.items() if seen]
    assert any((model.residual_blocks()[i].conv1.weight.grad != 0).any() for i in kept)


def test_seeded_generator_gives_the_same_drops_on_every_rank():
    patterns = []
    for rank in range(2):
        torch.manual_seed(rank)  # ranks differ in their global RNG and weights
        model = _small(0.5).train()
        model.seed_stochastic_depth(1234)
        calls = _record_branch_calls(model)
        for _ in range(10):
            model(torch.randn(2, 3, 8, 8))
        patterns.append({i: len(s) for i, s in calls.items()})
    assert patterns[0] == patterns[1]
