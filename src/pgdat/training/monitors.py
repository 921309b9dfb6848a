"""Monitors that observe training steps (registered in :data:`pgdat.training.callbacks.CALLBACKS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView


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

    def on_epoch_start(self, run: RunView) -> None:
        self._stats = torch.zeros(3, device=run.device, dtype=torch.float64)  # sum, sum of squares, count
        self._max = torch.zeros((), device=run.device, dtype=torch.float64)

    def on_step_end(self, run: RunView, out: dict[str, Any]) -> None:
        g = grad_norm_sq(list(run.model.parameters())).to(self._stats)
        self._stats += torch.stack([g, g * g, torch.ones_like(g)])
        self._max = torch.maximum(self._max, g)

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        s, s2, n = self._stats.tolist()
        mean = s / max(n, 1)
        metrics["grad_norm_mean"] = mean
        metrics["grad_norm_var"] = max(s2 / max(n, 1) - mean * mean, 0.0)
        metrics["grad_norm_max"] = float(self._max)

    def on_epoch_end(self, run: RunView, metrics: dict[str, Any]) -> None:
        from pgdat.analysis.plots import plot_series

        plot_series(run.history, ["grad_norm_mean"], run.out / "grad_norm.png", ylabel="||grad||^2 (mean)",
                    band="grad_norm_var", title=f"{run.cfg.name}: gradient norm")


@CALLBACKS.register("train_eval")
class TrainSetEval(Callback):
    """Clean and robust accuracy (``eval.attack``) of the first ``n`` training images against their training labels
    (noisy labels included), in eval mode: ``train_eval_clean_acc``, ``train_eval_robust_acc``; with label noise
    also the clean accuracy against the true labels, ``train_eval_true_clean_acc``."""

    def __init__(self, n: int = 1000) -> None:
        self.n = n

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        from pgdat.data.bundle import as_unit_float
        from pgdat.eval import evaluate

        cfg, train = run.cfg, run.data.train
        n = min(self.n, len(train))
        x, y = as_unit_float(train.x[:n].to(run.device)), train.y[:n].to(run.device)
        res = evaluate(run.attack_model, x, y, attacks=["clean", cfg.eval.attack], eps=cfg.attack.eps,
                       norm=cfg.attack.norm, batch_size=cfg.eval.batch_size, step_size=cfg.eval.step_size,
                       seed=cfg.train.seed, checks=False, box=run.box)
        metrics["train_eval_clean_acc"] = res.accuracy["clean"]
        metrics["train_eval_robust_acc"] = res.robust_accuracy
        if train.y_true is not None:
            with torch.no_grad():
                pred = torch.cat([run.attack_model(x[i:i + 500]).argmax(1) for i in range(0, n, 500)])
            metrics["train_eval_true_clean_acc"] = pred.eq(train.y_true[:n].to(pred.device)).double().mean().item()


@CALLBACKS.register("grad_noise")
class GradientNoiseMonitor(Callback):
    """Gradient-noise scale (DEAT's diffusion term): tr(Sigma)/B estimated as 1/2 E||g1 - g2||^2 over ``pairs`` pairs
    of independent training minibatches of the run's batch size, g the gradient of the method's loss (its attack
    included). Computed each epoch on a copy of the model, so training is not disturbed: ``grad_noise``."""

    def __init__(self, pairs: int = 2) -> None:
        self.pairs = pairs

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        import copy

        from pgdat.data.bundle import as_unit_float
        from pgdat.methods import StepContext
        from pgdat.training.setup import stream_seed

        model = copy.deepcopy(run.model).train()
        params = [p for p in model.parameters() if p.requires_grad]
        train, b = run.data.train, min(run.cfg.data.batch_size, len(run.data.train) // 2)
        gen = torch.Generator().manual_seed(stream_seed(run.cfg.train.seed, run.epoch, 0, "grad_noise"))
        ctx = StepContext(attack=run.cfg.attack, attack_model=model, generator=None, epoch=run.epoch - 1,
                          progress=float(run.epoch), n_index=run.n_index,
                          num_classes=run.data.info.num_classes)
        total = 0.0
        for _ in range(self.pairs):
            perm = torch.randperm(len(train), generator=gen)[:2 * b]
            grads = []
            for half in (perm[:b], perm[b:]):
                x = as_unit_float(train.x[half].to(run.device))
                ctx.index = train.index[half].to(run.device)
                loss = run.method(model, x, train.y[half].to(run.device), ctx)["loss"]
                grads.append(torch.autograd.grad(loss, params, allow_unused=True))
            total += 0.5 * sum(((g1 - g2).pow(2).sum().item() for g1, g2 in zip(*grads, strict=True)
                                if g1 is not None and g2 is not None), 0.0)
        metrics["grad_noise"] = total / self.pairs
