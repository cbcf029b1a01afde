"""LeNet-5 against the facts of LeCun et al. 1998 (section II.B, Table I, Appendix A)."""
import pytest
import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.models.lenet import C3_TABLE, DIGIT_BITMAPS, rbf_code, squash
from reference import build_on_meta, conv_linear_macs

# Table I as the paper lists it: the S2 maps each C3 map reads.
PAPER_C3_INPUTS = [
    {0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {0, 4, 5}, {0, 1, 5},
    {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {0, 3, 4, 5}, {0, 1, 4, 5}, {0, 1, 2, 5},
    {0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, {0, 1, 2, 3, 4, 5},
]


def _trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_per_layer_trainable_parameters_match_the_paper():
    model = cnnlab.create_model("lenet5")
    counts = {name: _trainable(getattr(model, name)) for name in ("c1", "s2", "c3", "s4", "c5", "f6", "output")}
    assert counts == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164, "output": 0}
    assert _trainable(model) == 60_000


def test_rbf_code_is_a_fixed_buffer_of_plus_minus_one():
    model = cnnlab.create_model("lenet5")
    state = model.state_dict()
    assert "output.code" in state
    assert "output.code" not in dict(model.named_parameters())
    code = model.output.code
    assert code.shape == (10, 84) and not code.requires_grad
    assert set(code.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(row.tolist()) for row in code}) == 10  # ten distinct codes
    # The code does not move during training.
    before = code.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert torch.equal(model.output.code, before)


def test_digit_bitmaps_are_7_by_12():
    assert len(DIGIT_BITMAPS) == 10
    for bitmap in DIGIT_BITMAPS:
        assert len(bitmap) == 12 and all(len(row) == 7 and set(row) <= {"#", "."} for row in bitmap)


def test_c3_table_is_table_one_of_the_paper():
    got = [{i for i in range(6) if C3_TABLE[i][o] == "X"} for o in range(16)]
    assert got == PAPER_C3_INPUTS


@pytest.mark.parametrize("training", [True, False], ids=["train-dense-kernel", "eval-grouped"])
def test_c3_connections_are_restricted_by_the_table(training):
    c3 = cnnlab.create_model("lenet5").c3.train(training)
    s2 = torch.randn(1, 6, 14, 14, requires_grad=True)
    out = c3(s2)
    assert out.shape == (1, 16, 10, 10)
    for o, inputs in enumerate(PAPER_C3_INPUTS):
        (grad,) = torch.autograd.grad(out[:, o].sum(), s2, retain_graph=True)
        reached = {i for i in range(6) if grad[:, i].abs().sum() > 0}
        assert reached == inputs, f"C3 map {o}"
    # The example of the task: C3 map 0 does not see S2 map 3.
    (grad,) = torch.autograd.grad(out[:, 0].sum(), s2)
    assert torch.count_nonzero(grad[:, 3]) == 0


@pytest.mark.parametrize("training", [True, False], ids=["train-dense-kernel", "eval-grouped"])
def test_c3_equals_a_masked_full_convolution(training):
    c3 = cnnlab.create_model("lenet5").c3.train(training)
    full = torch.zeros(16, 6, 5, 5)
    for k, (outs, gathered) in zip(c3.fan_ins, c3.groups):
        weight = getattr(c3, f"weight{k}")
        for j, o in enumerate(outs):
            for t, i in enumerate(gathered[j * k:(j + 1) * k]):
                full[o, i] = weight[j, t]
    x = torch.randn(2, 6, 14, 14)
    torch.testing.assert_close(c3(x), F.conv2d(x, full, c3.bias))


def test_squashing_function_maps_one_to_one():
    # A = 1.7159 is chosen so that f(1) = 1 and f(-1) = -1 (Appendix A).
    torch.testing.assert_close(squash(torch.tensor([1.0, -1.0, 0.0])), torch.tensor([1.0, -1.0, 0.0]), atol=1e-4, rtol=0)


def test_subsampling_is_sum_times_coefficient_plus_bias():
    s2 = cnnlab.create_model("lenet5").s2
    with torch.no_grad():
        s2.weight.copy_(torch.arange(1.0, 7.0))
        s2.bias.fill_(0.5)
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 6, 1, 1)
    # Top-left window of a 4x4 ramp: 0 + 1 + 4 + 5 = 10.
    out = s2(x)
    assert out.shape == (1, 6, 2, 2)
    torch.testing.assert_close(out[0, :, 0, 0], 10 * torch.arange(1.0, 7.0) + 0.5)


def test_output_volumes_at_32():
    model = cnnlab.create_model("lenet5")
    x = torch.randn(1, 1, 32, 32)
    shapes = []
    for name in ("c1", "s2", "c3", "s4", "c5"):
        x = getattr(model, name)(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]


def test_logits_are_negated_euclidean_distances_to_the_code():
    model = cnnlab.create_model("lenet5").eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        f6 = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    assert f6.shape == (3, 84) and model.num_features == 84
    energies = torch.cdist(f6, model.output.code).square()
    torch.testing.assert_close(logits, -energies)
    # An F6 output equal to the code of digit 3 has energy 0 there: argmax picks 3.
    out = model.output(model.output.code[3:4])
    assert out.argmax(1).item() == 3 and out[0, 3].item() == 0


def test_reset_classifier_rebuilds_a_deterministic_fixed_code():
    model = cnnlab.create_model("lenet5")
    model.reset_classifier(26)
    code = model.output.code
    assert code.shape == (26, 84) and _trainable(model.output) == 0
    torch.testing.assert_close(code[:10], rbf_code(10))
    assert set(code.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(row.tolist()) for row in code}) == 26
    assert torch.equal(code, rbf_code(26))  # deterministic
    model.reset_classifier(4)
    assert torch.equal(model.output.code, rbf_code(10)[:4])
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_a_few_steps_of_training_lower_the_loss():
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5")
    x, y = torch.randn(16, 1, 32, 32), torch.arange(16) % 10
    # The energies are large (84 squared differences), so the step must be small.
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_modern_variant_relu_maxpool_full_c3_linear_output():
    model = cnnlab.create_model("lenet5_modern")
    assert isinstance(model.act1, torch.nn.ReLU) and isinstance(model.s2, torch.nn.MaxPool2d)
    assert isinstance(model.c3, torch.nn.Conv2d) and model.c3.weight.shape == (16, 6, 5, 5)
    assert isinstance(model.output, torch.nn.Linear)
    # C1 + full C3 + C5 + F6 + linear output, counted by hand.
    want = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (120 * 16 * 25 + 120) + (84 * 120 + 84) + (10 * 84 + 10)
    assert _trainable(model) == want


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])
def test_mnist_sized_input_is_rejected_with_a_clear_message(name):
    model = cnnlab.create_model(name)
    with pytest.raises(cnnlab.models.InputSizeError, match="at least 32x32"):
        model(torch.randn(1, 1, 28, 28))


def test_multiply_accumulates_by_hand():
    # Each output value of a convolution costs fan-in multiply-adds; C3's fan-in is
    # 25 x the number of S2 maps it reads (Table I).
    c1 = 6 * 28 * 28 * 25
    c3 = 10 * 10 * 25 * sum(len(inputs) for inputs in PAPER_C3_INPUTS)
    c5 = 120 * 16 * 25
    f6 = 84 * 120
    assert conv_linear_macs(build_on_meta("lenet5"), 32, channels=1) == c1 + c3 + c5 + f6 == 325_680
