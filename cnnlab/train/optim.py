"""SGD (momentum, Nesterov) and Adam/AdamW, small enough to read, with PyTorch's update rules.

Why not ``torch.optim``: its optimizers import ``torch._dynamo`` on first use, which
costs about as much CPU time as importing torch itself (~1 s) -- a large slice of a
15-second training job. These follow ``torch.optim.SGD`` and ``torch.optim.Adam`` /
``AdamW`` step for step (tested against them), keep their state under the same names
(``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``step``), and work with
``torch.amp.GradScaler``.

    SGD   d = g + wd * p;  b = mu * b + d (b = d at first);  d = d + mu * b (Nesterov) or b;  p -= lr * d
    Adam  g += wd * p (AdamW instead: p *= 1 - lr * wd);  m, v = EMAs of g, g^2;
          p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """The parts of ``torch.optim.Optimizer`` the trainer and GradScaler use."""

    defaults: dict[str, Any]

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            self.param_groups.append({**self.defaults, **group, "params": list(group["params"])})
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def _groups_with_grads(self):
        """(group, params, grads) for each group, leaving out parameters without a gradient."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                yield group, params, [p.grad for p in params]

    def state_dict(self) -> dict[str, Any]:
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)):
            raise ValueError("the optimizer state does not match the model's parameters")
        by_index = {}
        for s, group in zip(saved, self.param_groups):
            group.update({k: v for k, v in s.items() if k != "params"})
            by_index.update(zip(s["params"], group["params"]))
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {k: v.to(p.device) if isinstance(v, torch.Tensor) else v for k, v in s.items()}


class SGD(Optimizer):
    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self) -> None:
        for group, params, grads in self._groups_with_grads():
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            if wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            if mu:
                bufs = []
                for p, g in zip(params, grads):
                    state = self.state.setdefault(p, {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.detach().clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    bufs.append(state["momentum_buffer"])
                grads = torch._foreach_add(grads, bufs, alpha=mu) if group["nesterov"] else bufs
            torch._foreach_add_(params, grads, alpha=-lr)


class Adam(Optimizer):
    """Adam; ``decoupled=True`` is AdamW (weight decay applied to the weights, not the gradient)."""

    def __init__(self, params: Iterable, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "decoupled": decoupled})

    @torch.no_grad()
    def step(self) -> None:
        for group, params, grads in self._groups_with_grads():
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            if wd and group["decoupled"]:
                torch._foreach_mul_(params, 1 - lr * wd)
            elif wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            for p, g in zip(params, grads):
                state = self.state.setdefault(p, {})
                if not state:
                    state.update(step=torch.zeros((), dtype=torch.float32),
                                 exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / (1 - b2 ** t) ** 0.5).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))
