"""The one input-gradient ascent loop behind every pgdat attack (FGSM, RS-FGSM, N-FGSM, PGD, CW-PGD).

Gradients are taken with ``torch.autograd.grad`` with respect to the perturbation only, so parameter ``.grad``
is never touched and no parameter-gradient work is done. The perturbation is kept in fp32 even when the
forward/backward passes run under autocast.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from pgdat.attacks.losses import AttackLoss, resolve_loss
from pgdat.errors import PgdatError
from pgdat.precision import autocast, resolve_precision
from pgdat.registry import Registry
from pgdat.threat import UNIT_BOX, ThreatModel

# bn_mode name -> fn(model) that puts the model in that mode for an attack (attack_mode restores it after)
BN_MODES: Registry[Callable[[nn.Module], None]] = Registry("bn_mode")
INITS = ("zero", "uniform", "normal")
NORMAL_INIT_STD = 0.001  # TRADES / MART start: x + 0.001 * N(0, I)


@BN_MODES.register("eval")
def _bn_eval(model: nn.Module) -> None:
    """BatchNorm normalises with its running statistics (Madry / TRADES convention)."""
    model.eval()


@BN_MODES.register("train")
def _bn_train(model: nn.Module) -> None:
    """BatchNorm normalises with batch statistics and updates its running statistics on every attack forward pass
    (the robust_overfitting convention)."""
    model.train()


@BN_MODES.register("train_frozen_stats")
def _bn_train_frozen_stats(model: nn.Module) -> None:
    """Batch statistics as in ``train``, but the running statistics (and ``num_batches_tracked``) are left
    untouched: each BatchNorm's ``track_running_stats`` is off for the attack (reading R2 of the NTK-AT notes, the
    attack's forward passes polluting the running statistics; not verified against Li et al.)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False


@contextlib.contextmanager
def attack_mode(model: nn.Module, bn_mode: str) -> Iterator[None]:
    """Put ``model`` in ``bn_mode`` for the attack (see :data:`BN_MODES`: eval | train | train_frozen_stats);
    restore every module's train/eval flag and every BatchNorm's ``track_running_stats`` after."""
    set_mode = BN_MODES.get(bn_mode)
    flags = [(m, m.training, getattr(m, "track_running_stats", None)) for m in model.modules()]
    set_mode(model)
    try:
        yield
    finally:
        for m, flag, track in flags:
            m.training = flag
            if track is not None:
                m.track_running_stats = track


@dataclass(frozen=True)
class AttackSpec:
    """Everything the ascent loop needs besides model and data.

    step_size: length of one step in pixel units. steps: number of gradient steps (>= 1).
    init: ``zero`` | ``uniform`` (uniform in the ball of radius init_scale*eps) | ``normal`` (N(0, 0.001^2)).
    project: project every iterate onto the eps-ball (False: only the [0,1] box, as N-FGSM).
    stop_on_success: freeze an example's perturbation once it is misclassified (evaluation; off for training).
    """

    threat: ThreatModel
    step_size: float
    steps: int
    init: str = "uniform"
    init_scale: float = 1.0
    project: bool = True
    targeted: bool = False
    stop_on_success: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_size) and self.step_size >= 0):
            raise PgdatError(f"step_size must be a finite number >= 0 (got {self.step_size})")
        if int(self.steps) != self.steps or self.steps < 1:
            raise PgdatError(f"steps must be an integer >= 1 (got {self.steps})")
        if self.init not in INITS:
            raise PgdatError(f"unknown init '{self.init}'; valid: {', '.join(INITS)}")
        if not (math.isfinite(self.init_scale) and self.init_scale >= 0):
            raise PgdatError(f"init_scale must be >= 0 (got {self.init_scale})")


def check_inputs(x: torch.Tensor, y: torch.Tensor, box: tuple[float, float] | None = UNIT_BOX) -> None:
    """Validate a batch: float images (B, C, H, W) in ``box`` ([0,1]; None: any finite values, for data outside
    [0,1] by construction) and int64 labels (B,) on the same device.

    Costs one host sync. The labels' range is checked against the model's outputs by :func:`check_logits`.
    """
    if not torch.is_floating_point(x):
        raise PgdatError(f"images must be float tensors in [0,1], got dtype {x.dtype}; divide uint8 images by 255")
    if x.dim() < 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise PgdatError(f"expected images (B, C, H, W) and labels (B,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.dtype != torch.int64:
        raise PgdatError(f"labels must be int64 class indices (torch.long), got dtype {y.dtype}; pass y.long()")
    if y.device != x.device:
        raise PgdatError(f"labels are on {y.device} but images on {x.device}; move both to the same device")
    if x.numel():
        lo, hi = torch.stack(torch.aminmax(x.detach())).float().tolist()
        if lo != lo or hi != hi:  # NaN
            raise PgdatError("images contain NaN; check the data pipeline (images must be finite and lie in [0,1])")
        if box is None and not (math.isfinite(lo) and math.isfinite(hi)):
            raise PgdatError(f"images must be finite (got range [{lo:.3g}, {hi:.3g}]); check the data pipeline")
        if box is not None and (lo < box[0] or hi > box[1]):
            raise PgdatError(f"images must lie in [{box[0]:g},{box[1]:g}] (got range [{lo:.3g}, {hi:.3g}]); "
                             "normalisation belongs inside the model (pgdat.models.Normalize), not in the data; for "
                             "data outside [0,1] by construction (unclipped injected features) use box=None "
                             "(attack.box=none)")


def check_labels(y: torch.Tensor, num_classes: int) -> None:
    """PgdatError unless every label (B,) is a class index in [0, num_classes). One host sync."""
    if not y.numel():
        return
    lo, hi = torch.stack(torch.aminmax(y)).tolist()
    if lo < 0 or hi >= num_classes:
        raise PgdatError(f"labels span [{lo}, {hi}] but the model has {num_classes} outputs "
                         f"(classes 0..{num_classes - 1}): wrong num_classes, or a model trained on another dataset")


def check_logits(logits: torch.Tensor, y: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """PgdatError unless the model gave logits (B, C) for the batch of labels y (B,) and every label of ``labels``
    (default y; e.g. the whole dataset's) indexes one of the C classes; checked on an attack's first forward pass,
    before any loss is computed. One host sync."""
    if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
        raise PgdatError(f"the model returned shape {tuple(logits.shape)} for a batch of {y.shape[0]}; attacks need "
                         "logits (B, num_classes)")
    check_labels(y if labels is None else labels, logits.shape[1])


def initial_delta(x: torch.Tensor, spec: AttackSpec, generator: torch.Generator | None) -> torch.Tensor:
    """Starting perturbation (fp32, shaped like x), inside ball ∩ box when ``spec.project``."""
    if spec.init == "zero":
        delta = torch.zeros_like(x, dtype=torch.float32)
    elif spec.init == "uniform":
        delta = spec.threat.random_init(x, scale=spec.init_scale, generator=generator)
    else:
        gen_device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=gen_device, dtype=torch.float32)
        delta = (NORMAL_INIT_STD * noise).to(x.device)
    if spec.project:
        delta = spec.threat.project_ball(delta)
    return spec.threat.project_box(x.float(), delta)


def _rescale_hook(per_batch: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gradient hook for fp32 logits (B, K) computed under fp16 autocast: divide the loss gradient by its largest
    entry (per example; per batch when ``per_batch``, as train-mode BatchNorm couples the examples) before it is
    cast to fp16. Without it the gradient of a confidently classified example (a softmax tail below 6e-8)
    underflows to zero, sign(0) = 0, and the example never moves. Steps are sign or normalised, so a positive
    scale leaves their direction unchanged."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        top = grad.abs().amax() if per_batch else grad.abs().amax(dim=1, keepdim=True)
        return grad / torch.where(top > 0, top, torch.ones_like(top))

    return hook


def _ascent_step(model: nn.Module, x32: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, spec: AttackSpec,
                 loss_fn: AttackLoss, precision: str, dtype: torch.dtype, check: bool) -> tuple[torch.Tensor, ...]:
    """One input-gradient step from ``delta`` (fp32, like x32 (B, ...)): (logits (B, K) at x + delta, detached;
    the next delta, projected). ``check``: validate logits and labels before the loss (one host sync)."""
    delta = delta.detach().requires_grad_(True)
    with autocast(precision, x32.device):
        logits = model((x32 + delta).to(dtype))
    if check:
        check_logits(logits, y)
    logits32 = logits.float()
    if precision == "fp16":
        logits32.register_hook(_rescale_hook(model.training))
    objective = loss_fn(logits32, y).sum()
    (grad,) = torch.autograd.grad(-objective if spec.targeted else objective, delta)
    with torch.no_grad():
        new = spec.threat.step(delta, grad, spec.step_size)
        new = spec.threat.project(x32, new) if spec.project else spec.threat.project_box(x32, new)
    return logits.detach(), new


def _not_fooled(logits: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    """(B,) bool: the attack has not yet succeeded on the example (untargeted: still correct; targeted: not y)."""
    pred = logits.argmax(dim=1)
    return pred.ne(y) if spec.targeted else pred.eq(y)


def ascend(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    loss_fn: AttackLoss,
    *,
    precision: str = "fp32",
    generator: torch.Generator | None = None,
    check_labels: bool = False,
) -> torch.Tensor:
    """Run one start of the ascent loop; returns the final perturbation delta (fp32, detached, shaped like x).

    The model must already be in the attack's train/eval mode. ``y`` is whatever ``loss_fn`` takes as target;
    with ``check_labels`` it must be class indices (B,), checked against the first forward's logits (one sync).
    With ``spec.stop_on_success`` an example's perturbation is frozen once it fools the model: in eval mode the
    example also leaves the batch (:func:`_ascend_dropping_fooled`); in train mode, where BatchNorm statistics
    couple the examples, it stays in and its steps are masked.
    """
    x32 = x.float()
    delta = initial_delta(x32, spec, generator)
    if spec.stop_on_success and not model.training:
        return _ascend_dropping_fooled(model, x32, y, delta, spec, loss_fn, precision, x.dtype, check_labels)
    active = None  # (B,) bool mask of examples still updated, with stop_on_success
    for k in range(spec.steps):
        logits, new = _ascent_step(model, x32, y, delta, spec, loss_fn, precision, x.dtype, check_labels and k == 0)
        if spec.stop_on_success:
            alive = _not_fooled(logits, y, spec)
            active = alive if active is None else active & alive
            new = torch.where(active.view(-1, *([1] * (x.dim() - 1))), new, delta)
        delta = new
    return delta.detach()


def _confirm_fooled_fp32(model: nn.Module, x32: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                         alive: torch.Tensor, spec: AttackSpec, dtype: torch.dtype) -> torch.Tensor:
    """``alive`` (B,) with every example that the autocast logits call fooled re-checked by an fp32 forward pass at
    ``delta``: a bf16/fp16 near-tie must not freeze an example that fp32 (which evaluation counts with) still
    classifies correctly. One host sync; the forward pass covers only those examples."""
    idx = (~alive).nonzero().squeeze(1)  # host sync (autocast evaluation only)
    if idx.numel() == 0:
        return alive
    with torch.no_grad():
        logits = model(spec.threat.clamp_box(x32[idx] + delta[idx]).to(dtype)).float()
    return alive.index_put((idx,), _not_fooled(logits, y[idx], spec))


def _ascend_dropping_fooled(model: nn.Module, x32: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                            spec: AttackSpec, loss_fn: AttackLoss, precision: str, dtype: torch.dtype,
                            check_labels: bool) -> torch.Tensor:
    """stop_on_success for an eval-mode model (examples independent): once fooled, an example's perturbation is
    frozen and it leaves the batch, so later steps only pay for the examples still standing. Same result as
    masking; one host sync per step (evaluation only; two under autocast, where "fooled" is confirmed in fp32).
    ``loss_fn`` must be per-example in (logits, y)."""
    out = delta.clone()  # (B, ...) final perturbations
    keep = torch.arange(y.shape[0], device=x32.device)  # (b,) indices of the examples still in the batch
    shape = (-1, *([1] * (x32.dim() - 1)))
    for k in range(spec.steps):
        logits, new = _ascent_step(model, x32, y, delta, spec, loss_fn, precision, dtype, check_labels and k == 0)
        alive = _not_fooled(logits, y, spec)
        if precision != "fp32":
            alive = _confirm_fooled_fp32(model, x32, y, delta, alive, spec, dtype)
        out[keep] = torch.where(alive.view(shape), new, delta)
        rows = alive.nonzero().squeeze(1)  # host sync: which examples stay
        if rows.numel() == 0:
            break
        if rows.numel() < keep.numel():
            keep, x32, y, new = keep[rows], x32[rows], y[rows], new[rows]
        delta = new
    return out


def perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    loss: str | AttackLoss = "ce",
    restarts: int = 1,
    bn_mode: str = "eval",
    precision: str = "fp32",
    generator: torch.Generator | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Attack a batch with ``restarts`` random starts; returns detached ``x_adv`` in the threat's box shaped like x.

    With restarts > 1, later starts only attack the examples not yet fooled, and each example keeps the
    perturbation that fooled the model first or, if none did, the one of highest loss.
    """
    if int(restarts) != restarts or restarts < 1:
        raise PgdatError(f"restarts must be an integer >= 1 (got {restarts})")
    if check:  # one sync here, one after the first forward pass (labels against the model's outputs)
        check_inputs(x, y, spec.threat.box)
    loss_fn = resolve_loss(loss)
    precision = resolve_precision(precision, x.device)
    with attack_mode(model, bn_mode), torch.enable_grad():  # attacks work even when called under no_grad
        delta = ascend(model, x, y, spec, loss_fn, precision=precision, generator=generator, check_labels=check)
        if restarts > 1:
            delta = _restart(model, x, y, spec, loss_fn, delta, restarts, precision, generator)
    return spec.threat.clamp_box(x.float() + delta).to(x.dtype).detach()


def _score(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, spec: AttackSpec, loss_fn: AttackLoss
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example (loss, fooled) of the perturbed batch, without gradients."""
    with torch.no_grad():
        logits = model(spec.threat.clamp_box(x.float() + delta).to(x.dtype)).float()
    objective = -loss_fn(logits, y) if spec.targeted else loss_fn(logits, y)
    return objective, ~_not_fooled(logits, y, spec)


def _restart(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    loss_fn: AttackLoss,
    delta: torch.Tensor,
    restarts: int,
    precision: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Restarts 2..R on the examples not yet fooled; keep first-fooling or highest-loss perturbations."""
    best_loss, fooled = _score(model, x, y, delta, spec, loss_fn)
    for _ in range(restarts - 1):
        idx = (~fooled).nonzero().squeeze(1)  # host sync: fine, restarts are an evaluation feature
        if idx.numel() == 0:
            break
        cand = ascend(model, x[idx], y[idx], spec, loss_fn, precision=precision, generator=generator)
        cand_loss, cand_fooled = _score(model, x[idx], y[idx], cand, spec, loss_fn)
        better = cand_fooled | (cand_loss > best_loss[idx])
        take = idx[better]
        delta[take] = cand[better]
        best_loss[take] = cand_loss[better]
        fooled[take] = cand_fooled[better]
    return delta
