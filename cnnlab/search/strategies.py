"""Search strategies behind one interface: ``ask`` for an architecture, ``tell`` its reward.

    strategy = get_strategy("reinforce", space, seed=0)
    tokens, info = strategy.ask()
    strategy.tell(tokens, reward, info)       # reward None: the trial failed

Several asks may be outstanding at once (parallel workers). ``state_dict`` /
``load_state_dict`` carry everything the strategy needs to continue exactly (weights,
optimizer, baseline, population, random-number generators).

* ``random`` — uniform over the space: the baseline every search claim is measured
  against.
* ``evolution`` — regularized (aging) evolution, Real et al. 2019 ("Regularized
  Evolution for Image Classifier Architecture Search", arXiv:1802.01548, Algorithm 1):
  a population of P random architectures; then repeatedly sample S of the population,
  mutate the best of the sample (one decision changed to another value, the paper's
  hidden-state / op mutations in token form) and add the child, removing the *oldest*
  member, not the worst.
* ``reinforce`` — the LSTM controller of Zoph & Le 2016 trained with REINFORCE, an
  exponential-moving-average baseline and an entropy bonus
  (:mod:`cnnlab.search.controller`).
"""
from __future__ import annotations

import random
from collections import deque
from typing import Any, Sequence

import torch

from cnnlab.search.controller import Controller, one_thread, reinforce_loss
from cnnlab.search.spaces import SearchSpace

__all__ = ["Strategy", "RandomSearch", "RegularizedEvolution", "Reinforce", "STRATEGIES", "get_strategy"]


class Strategy:
    name = ""

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.updates = 0  # policy updates so far (reinforce); generations for the others

    def ask(self) -> tuple[tuple[int, ...], dict[str, Any]]:
        raise NotImplementedError

    def tell(self, tokens: Sequence[int], reward: float | None, info: dict[str, Any] | None = None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(_tuple_state(state["rng"]))
        self.updates = state["updates"]


def _tuple_state(s):
    # random.Random state as saved (tuples may come back as lists from JSON)
    return (s[0], tuple(s[1]), s[2]) if isinstance(s, (list, tuple)) else s


def _check_positive(name: str, value, *, integer: bool = False, zero: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if zero else value > 0)
    if integer:
        ok = ok and isinstance(value, int)
    if not ok:
        kind = "integer" if integer else "number"
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} {kind}, got {value!r}")
    return value


class RandomSearch(Strategy):
    name = "random"

    def ask(self):
        return self.space.random_tokens(self.rng), {"generation": self.updates}


class RegularizedEvolution(Strategy):
    """Real et al. 2019, Algorithm 1 (asynchronous form: a child is bred whenever a worker is free)."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, sample_size: int = 5):
        super().__init__(space, seed)
        self.population_size = _check_positive("population_size", population_size, integer=True)
        self.sample_size = _check_positive("sample_size", sample_size, integer=True)
        if self.sample_size > self.population_size:
            raise ValueError(f"sample_size ({sample_size}) cannot exceed population_size ({population_size})")
        self.population: deque[tuple[tuple[int, ...], float]] = deque()
        self.asked = 0

    def ask(self):
        self.asked += 1
        if len(self.population) < self.population_size:  # still building the random initial population
            return self.space.random_tokens(self.rng), {"generation": 0, "parent": None}
        sample = [self.population[self.rng.randrange(len(self.population))] for _ in range(self.sample_size)]
        parent = max(sample, key=lambda m: m[1])[0]
        return self.mutate(parent), {"generation": self.updates + 1, "parent": list(parent)}

    def mutate(self, tokens: Sequence[int]) -> tuple[int, ...]:
        mutable = [i for i, d in enumerate(self.space.decisions) if d.size > 1]
        child = list(tokens)
        i = mutable[self.rng.randrange(len(mutable))]
        other = self.rng.randrange(self.space.decisions[i].size - 1)
        child[i] = other if other < child[i] else other + 1  # any value but the current one
        return tuple(child)

    def tell(self, tokens, reward, info=None):
        if reward is None:  # a failed child never joins the population
            return
        self.population.append((tuple(tokens), float(reward)))
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest dies
            self.updates += 1

    def state_dict(self):
        return {**super().state_dict(), "population": [[list(t), r] for t, r in self.population], "asked": self.asked}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.population = deque((tuple(t), float(r)) for t, r in state["population"])
        self.asked = state["asked"]


class Reinforce(Strategy):
    """Zoph & Le's controller, updated with REINFORCE every ``batch_size`` rewards.

    Args:
        lr: Adam learning rate (the paper: 0.0006 over 12,800 architectures; a laptop
            search of a few hundred trials needs a larger step, hence the default).
        baseline_decay: the moving-average baseline ``b <- decay * b + (1 - decay) * R``.
        entropy_weight: weight of the entropy bonus.
        batch_size: architectures per policy update (m in the paper).
        failed_reward: the reward of a trial that crashed or timed out.
        hidden_size, num_layers: the LSTM (the paper: 35 units, 2 layers).
    """

    name = "reinforce"

    def __init__(self, space: SearchSpace, seed: int = 0, lr: float = 0.05, baseline_decay: float = 0.9,
                 entropy_weight: float = 1e-3, batch_size: int = 5, failed_reward: float = 0.0,
                 hidden_size: int = 35, num_layers: int = 2):
        super().__init__(space, seed)
        self.lr = _check_positive("lr", lr)
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay!r}")
        self.baseline_decay = baseline_decay
        self.entropy_weight = _check_positive("entropy_weight", entropy_weight, zero=True)
        self.batch_size = _check_positive("batch_size", batch_size, integer=True)
        self.failed_reward = float(failed_reward)
        torch_rng = torch.random.fork_rng(devices=[])  # do not disturb the global RNG
        with torch_rng:
            torch.manual_seed(seed)
            self.controller = Controller(space, hidden_size=hidden_size, num_layers=num_layers)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.batch: list[tuple[tuple[int, ...], float]] = []
        self.losses: list[float] = []

    def ask(self):
        with one_thread():
            tokens, log_prob = self.controller.sample(self.generator)
        return tokens, {"generation": self.updates, "log_prob": log_prob}

    def tell(self, tokens, reward, info=None):
        self.batch.append((tuple(tokens), self.failed_reward if reward is None else float(reward)))
        if len(self.batch) >= self.batch_size:
            self.update()

    def update(self) -> None:
        with one_thread():
            self._update()

    def _update(self) -> None:
        batch, self.batch = self.batch, []
        rewards = [r for _, r in batch]
        if self.baseline is None:  # start from the first batch's mean, not from 0 (which would favour any sample)
            self.baseline = sum(rewards) / len(rewards)
        loss = reinforce_loss(self.controller, batch, self.baseline, self.entropy_weight)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        for r in rewards:
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
        self.updates += 1
        self.losses.append(loss.item())

    def state_dict(self):
        return {**super().state_dict(), "controller": self.controller.state_dict(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "baseline": self.baseline, "batch": [[list(t), r] for t, r in self.batch], "losses": self.losses}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.batch = [(tuple(t), float(r)) for t, r in state["batch"]]
        self.losses = list(state["losses"])


STRATEGIES = {"reinforce": Reinforce, "random": RandomSearch, "evolution": RegularizedEvolution}


def get_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """The strategy ``name`` on ``space``; ``options`` are its hyperparameters."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    import inspect

    params = inspect.signature(STRATEGIES[name]).parameters
    accepted = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)
                and p not in ("space", "seed")]
    takes_any = any(v.kind == v.VAR_KEYWORD for v in params.values())
    unknown = [] if takes_any else [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(f"strategy {name!r}: unexpected keyword option {', '.join(unknown)}; its options: "
                         f"{', '.join(accepted) or '(none)'} (--strategy-option KEY=VALUE)")
    try:
        return STRATEGIES[name](space, seed=seed, **options)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r}: {exc}") from None
