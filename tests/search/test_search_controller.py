"""The LSTM controller and REINFORCE, checked against hand computation on a tiny space."""
import math

import pytest
import torch

from cnnlab.search.controller import Controller, reinforce_loss
from cnnlab.search.spaces import Decision, SearchSpace
from cnnlab.search.strategies import Reinforce


class TinySpace(SearchSpace):
    name = "tiny"

    def __init__(self, sizes=(2, 3)):
        self.args = {}
        self.decisions = tuple(Decision(f"d{i}", tuple(range(n))) for i, n in enumerate(sizes))


def _lstm_cell(x, h, c, cell):
    """An LSTM cell written out (PyTorch's gate order: input, forget, cell, output)."""
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def _hand_logits(ctrl: Controller, tokens):
    """Each step's logits, computed by hand from the controller's weights (one LSTM layer)."""
    (cell,) = ctrl.lstm
    h = c = torch.zeros(1, ctrl.hidden_size)
    x = ctrl.start
    out = []
    for i, head in enumerate(ctrl.heads):
        h, c = _lstm_cell(x, h, c, cell)
        out.append((h @ head.weight.T + head.bias)[0])
        if i + 1 < len(ctrl.heads):
            x = ctrl.embed[i].weight[tokens[i]][None]
    return out


def test_log_prob_and_entropy_equal_hand_computation():
    torch.manual_seed(3)
    ctrl = Controller(TinySpace(), hidden_size=4, num_layers=1)
    for p in ctrl.parameters():  # larger weights than the init, so the softmaxes are far from uniform
        torch.nn.init.normal_(p, std=0.8)
    for tokens in [(0, 0), (1, 2), (0, 1), (1, 0)]:
        logits = _hand_logits(ctrl, tokens)
        expected_lp, expected_h = 0.0, 0.0
        for z, t in zip(logits, tokens):
            z = z.tolist()
            norm = math.log(sum(math.exp(v) for v in z))
            expected_lp += z[t] - norm
            ps = [math.exp(v - norm) for v in z]
            expected_h += -sum(p * math.log(p) for p in ps)
        lp, ent = ctrl.log_prob(tokens)
        assert lp.item() == pytest.approx(expected_lp, abs=1e-5)
        assert ent.item() == pytest.approx(expected_h, abs=1e-5)
    # the probabilities of all 6 architectures sum to one
    total = sum(math.exp(ctrl.log_prob((a, b))[0].item()) for a in range(2) for b in range(3))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_reinforce_gradient_equals_hand_computation():
    """d/dz of -(R - b) log p_a - beta H at a step's logits z is -(R - b)(onehot_a - p) + beta p (log p + H)."""
    torch.manual_seed(5)
    ctrl = Controller(TinySpace(), hidden_size=4, num_layers=1)
    for p in ctrl.parameters():
        torch.nn.init.normal_(p, std=0.8)
    batch = [((1, 2), 0.9), ((0, 1), 0.4)]
    baseline, beta = 0.6, 0.05
    loss = reinforce_loss(ctrl, batch, baseline, beta)
    ctrl.zero_grad()
    loss.backward()
    # A head's bias shifts only its own step's logits, so its gradient is that step's dloss/dz.
    for step, head in enumerate(ctrl.heads):
        expected = torch.zeros(head.bias.shape)
        for tokens, reward in batch:
            z = _hand_logits(ctrl, tokens)[step].detach()
            p = torch.softmax(z, 0)
            logp = torch.log(p)
            h = -(p * logp).sum()
            onehot = torch.zeros_like(p)
            onehot[tokens[step]] = 1
            expected += (-(reward - baseline) * (onehot - p) + beta * p * (logp + h)) / len(batch)
        assert torch.allclose(head.bias.grad, expected, atol=1e-6), (step, head.bias.grad, expected)


def test_sampling_follows_the_controller_distribution():
    torch.manual_seed(0)
    ctrl = Controller(TinySpace((3,)), hidden_size=4, num_layers=1)
    with torch.no_grad():
        ctrl.heads[0].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
        ctrl.heads[0].weight.zero_()
    g = torch.Generator().manual_seed(1)
    counts = [0, 0, 0]
    n = 4000
    for _ in range(n):
        counts[ctrl.sample(g)[0][0]] += 1
    p = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).tolist()
    for c, q in zip(counts, p):  # within 4 standard deviations of the binomial
        assert abs(c / n - q) < 4 * math.sqrt(q * (1 - q) / n)


def test_controller_converges_on_a_synthetic_reward():
    """Reward 1 when the middle decision picks value 3, else 0.2: the policy must learn it."""
    space = TinySpace((2, 5, 2))
    s = Reinforce(space, seed=0, lr=0.05, batch_size=5)
    for _ in range(300):
        tokens, info = s.ask()
        s.tell(tokens, 1.0 if tokens[1] == 3 else 0.2, info)
    probs = s.controller.probabilities((0, 3, 0))
    assert probs[1][3] > 0.9, probs[1]  # started at ~0.2 (uniform over 5)
    picks = [s.ask()[0][1] for _ in range(100)]
    assert picks.count(3) > 85
