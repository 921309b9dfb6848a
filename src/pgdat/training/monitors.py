"""Monitors that observe training steps (registered in :data:`pgdat.training.callbacks.CALLBACKS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.trainer import Trainer


def grad_norm_sq(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Squared L2 norm of the full parameter gradient, sum over tensors of ||grad||^2 (0-d tensor, no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.stack(torch._foreach_norm(grads)).float().pow(2).sum()


@CALLBACKS.register("grad_norm")
class GradNormMonitor(Callback):
    """Gradient instability (Dong et al.): per step G = ||grad_theta L||_2^2 after backward (weight decay excluded,
    as SGD applies it inside the step); per epoch ``grad_norm_mean``, ``grad_norm_var``, ``grad_norm_max`` of G."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._stats = torch.zeros(3, device=trainer.device, dtype=torch.float64)  # sum, sum of squares, count
        self._max = torch.zeros((), device=trainer.device, dtype=torch.float64)

    def on_step_end(self, trainer: Trainer, out: dict[str, Any]) -> None:
        g = grad_norm_sq(list(trainer.model.parameters())).to(self._stats)
        self._stats += torch.stack([g, g * g, torch.ones_like(g)])
        self._max = torch.maximum(self._max, g)

    def on_epoch_metrics(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        s, s2, n = self._stats.tolist()
        mean = s / max(n, 1)
        metrics["grad_norm_mean"] = mean
        metrics["grad_norm_var"] = max(s2 / max(n, 1) - mean * mean, 0.0)
        metrics["grad_norm_max"] = float(self._max)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        from pgdat.analysis.plots import plot_series

        plot_series(trainer.history, ["grad_norm_mean"], trainer.out / "grad_norm.png", ylabel="||grad||^2 (mean)",
                    band="grad_norm_var", title=f"{trainer.cfg.name}: gradient norm")
