"""DEAT's outer optimizer (Sun, Sinha, Zhang 2023), best-informed reading (notes: deat.md §3, NOT verified against the
paper): PGD-AT's inner maximisation is unchanged; the outer step combines two gradient buffers filled on alternate
iterations, positive/negative-momentum style (Xie et al.'s PNM):

    cur, other = (A, B) if t is odd else (B, A);  cur = beta*cur + (1-beta)*g
    d = (1+k)*cur - k*other  [/ sqrt((1+k)^2 + k^2) if normalize];  heavy-ball u = momentum*u + d;  theta -= lr*u

k = 0 and beta = 0 take SGD's exact code path (bit-for-bit equal to ``torch.optim.SGD``). The step parity is kept per
parameter: a parameter without a gradient on a step skips both buffers and its counter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from pgdat.errors import PgdatError


class DiffusionEnhancedSGD(torch.optim.Optimizer):
    """SGD whose drift is (1+k)*current - k*previous gradient buffer; see the module docstring."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, k: float = 1.0, beta: float = 0.0,
                 normalize: bool = False, momentum: float = 0.9, weight_decay: float = 5e-4,
                 decoupled_wd: bool = False) -> None:
        if lr < 0 or k < 0 or not 0 <= beta < 1 or not 0 <= momentum < 1 or weight_decay < 0:
            raise PgdatError(f"DEAT needs lr >= 0, k >= 0, 0 <= beta < 1, 0 <= momentum < 1, weight_decay >= 0 "
                             f"(got lr={lr}, k={k}, beta={beta}, momentum={momentum}, weight_decay={weight_decay})")
        defaults = {"lr": lr, "k": k, "beta": beta, "normalize": normalize, "momentum": momentum,
                    "weight_decay": weight_decay, "decoupled_wd": decoupled_wd}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if group["k"] == 0 and group["beta"] == 0 and not group["decoupled_wd"]:
                        self._sgd(p, group)
                    else:
                        self._deat(p, group)
        return loss

    def _sgd(self, p: torch.Tensor, group: dict) -> None:
        """torch.optim.SGD's single-tensor update (dampening 0, no nesterov), operation for operation."""
        d_p = p.grad
        if group["weight_decay"] != 0:
            d_p = d_p.add(p, alpha=group["weight_decay"])
        if group["momentum"] != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = torch.clone(d_p).detach()
            else:
                buf.mul_(group["momentum"]).add_(d_p)
            d_p = buf
        p.add_(d_p, alpha=-group["lr"])

    def _deat(self, p: torch.Tensor, group: dict) -> None:
        k, beta, lr, wd = group["k"], group["beta"], group["lr"], group["weight_decay"]
        state = self.state[p]
        g = p.grad if group["decoupled_wd"] or wd == 0 else p.grad.add(p, alpha=wd)
        if "buf_a" not in state:
            state["step"] = 0
            state["buf_a"], state["buf_b"] = torch.zeros_like(p), torch.zeros_like(p)
        state["step"] += 1
        cur, other = (state["buf_a"], state["buf_b"]) if state["step"] % 2 == 1 else (state["buf_b"], state["buf_a"])
        cur.mul_(beta).add_(g, alpha=1 - beta)
        d = cur.mul(1 + k).sub_(other, alpha=k)
        if group["normalize"]:
            d.div_(math.sqrt((1 + k) ** 2 + k ** 2))
        if group["momentum"] > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.clone()
            else:
                buf.mul_(group["momentum"]).add_(d)
            d = buf
        if group["decoupled_wd"] and wd != 0:
            p.mul_(1 - lr * wd)
        p.add_(d, alpha=-lr)
