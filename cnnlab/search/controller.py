"""The LSTM controller of Zoph & Le 2016 (arXiv:1611.01578, Sec. 3.1-3.2).

An LSTM emits an architecture token by token: at each step the hidden state goes through
that decision's own softmax classifier, a token is sampled, and its embedding is the next
step's input (the first step reads a learned start vector). The probability of an
architecture is the product of its tokens' probabilities, so ``log_prob`` is a sum over
steps; ``entropy`` sums each step's softmax entropy along the sampled sequence (the
entropy bonus of Williams & Peng 1991, used by ENAS, Pham et al. 2018).

REINFORCE (Williams 1992), as in Zoph & Le Sec. 3.2: for m sampled architectures with
rewards R_k and a baseline b (an exponential moving average of earlier rewards),

    grad J ~= 1/m sum_k (R_k - b) grad log P(a_k),

so the loss minimised is ``-mean_k (R_k - b) log P(a_k) - entropy_weight * mean_k H_k``
(:func:`reinforce_loss`).

Paper defaults: a 2-layer LSTM with 35 hidden units, Adam with learning rate 0.0006
(Zoph & Le, Sec. 4.1).
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.search.spaces import SearchSpace

__all__ = ["Controller", "reinforce_loss", "one_thread"]


@contextlib.contextmanager
def one_thread():
    """Run the controller's tiny ops on one thread: with more, intra-op thread hand-offs on a busy
    CPU cost far more than the ops (measured 40x slower with 2 threads on a loaded 2-core machine)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Controller(nn.Module):
    """An LSTM policy over the token sequences of ``space``."""

    def __init__(self, space: SearchSpace, hidden_size: int = 35, num_layers: int = 2):
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ValueError("the controller needs hidden_size >= 1 and num_layers >= 1")
        self.sizes = [d.size for d in space.decisions]
        if not self.sizes:
            raise ValueError(f"space {space.name!r} has no decision to make")
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.lstm = nn.ModuleList(nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers))
        # embedding of the token chosen at step i (the input of step i + 1); classifier of step i
        self.embed = nn.ModuleList(nn.Embedding(n, hidden_size) for n in self.sizes[:-1])
        self.heads = nn.ModuleList(nn.Linear(hidden_size, n) for n in self.sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # ENAS/Zoph & Le initialise the controller uniformly in [-0.1, 0.1] (ENAS) / [-0.08, 0.08] (Zoph & Le)
        for p in self.parameters():
            nn.init.uniform_(p, -0.08, 0.08)

    def _steps(self, tokens: Sequence[int] | None, generator: torch.Generator | None):
        """Run the LSTM over the sequence; sample the tokens that ``tokens`` does not give."""
        x = self.start
        state = [(torch.zeros(1, self.hidden_size), torch.zeros(1, self.hidden_size)) for _ in self.lstm]
        chosen: list[int] = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for i, head in enumerate(self.heads):
            h = x
            for k, cell in enumerate(self.lstm):
                state[k] = cell(h, state[k])
                h = state[k][0]
            logits = head(h)[0]  # (choices of decision i,)
            logp = F.log_softmax(logits, dim=-1)
            if tokens is None:
                with torch.no_grad():
                    t = int(torch.multinomial(logp.exp(), 1, generator=generator))
            else:
                t = int(tokens[i])
            chosen.append(t)
            log_prob = log_prob + logp[t]
            entropy = entropy - (logp.exp() * logp).sum()
            if i + 1 < len(self.heads):
                x = self.embed[i](torch.tensor([t]))
        return tuple(chosen), log_prob, entropy

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> tuple[tuple[int, ...], float]:
        """One architecture and its log-probability (no gradient)."""
        tokens, log_prob, _ = self._steps(None, generator)
        return tokens, float(log_prob)

    def log_prob(self, tokens: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log P(tokens), summed per-step entropy), differentiable."""
        if len(tokens) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} tokens, got {len(tokens)}")
        _, log_prob, entropy = self._steps(tokens, None)
        return log_prob, entropy

    @torch.no_grad()
    def probabilities(self, tokens: Sequence[int]) -> list[list[float]]:
        """Each step's softmax along ``tokens`` (what the controller would pick at each step)."""
        probs = []
        x = self.start
        state = [(torch.zeros(1, self.hidden_size), torch.zeros(1, self.hidden_size)) for _ in self.lstm]
        for i, head in enumerate(self.heads):
            h = x
            for k, cell in enumerate(self.lstm):
                state[k] = cell(h, state[k])
                h = state[k][0]
            probs.append(F.softmax(head(h)[0], -1).tolist())
            if i + 1 < len(self.heads):
                x = self.embed[i](torch.tensor([int(tokens[i])]))
        return probs


def reinforce_loss(controller: Controller, batch: Sequence[tuple[Sequence[int], float]], baseline: float,
                   entropy_weight: float) -> torch.Tensor:
    """``-mean (R - b) log P(a) - entropy_weight * mean H`` over ``batch`` of (tokens, reward)."""
    terms = []
    for tokens, reward in batch:
        log_prob, entropy = controller.log_prob(tokens)
        terms.append(-(reward - baseline) * log_prob - entropy_weight * entropy)
    return torch.stack(terms).mean()
