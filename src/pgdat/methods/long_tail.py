"""Long-tailed adversarial training: REAT (Li, Xu, Zhang) and the two small-step baselines.

REAT = RBL (class-weighted CE in the inner maximisation, weights from an effective number of the previous epoch's
adversarial-example predictions) + BSL (Balanced Softmax on x_adv) + TAIL (a penalty on penultimate features around
tail-class anchors). Two presets (notes: reat.md §6; docs/fidelity.md):

- ``variant="as_released"`` (default): the authors' code (``GuanlinLee/REAT`` loss_functions.py ``REAT``, the loss
  behind the paper's tables): TAIL collapsed to (1/|T|) sum_i c_i * K_i by the legacy ``KLDivLoss(size_average=
  'none')`` mean over B x D entries, with the code's sign.
- ``variant="paper_intent"``: an UNVERIFIED reading of the abstract that differs from the released loss in exactly
  two ways: TAIL is reduced pairwise (each pair keeps its weight W_ij) and its sign is contrastive (pull same-class
  features towards a tail anchor, push other classes, each push capped at ``margin`` nats). It keeps the released
  loss's scale: every KL is divided by the feature dimension D, as the released mean over B x D entries does.

Why the scale matters (issue 24): without the 1/D, the pairwise push weighs up to 2 sqrt(N / n_min) (12 on ratio-10
data) against a BSL of about 2; on ``pgdat repro reat --preset cpu`` it inflated the penultimate features (norm 2 ->
13 in six steps), the next steps killed 82% of the ReLU features and training sat at chance (clean 10%). The capped
push is bounded below, but its bound is reached by growing the features. The one TAIL configuration that is unbounded
below (``tail_reduction=pairwise`` with ``tail_sign=as_written``: an uncapped push on same-class pairs) is refused.

RBL is inert under sign-PGD with eval-mode BN (a positive per-example factor does not change sign(grad)); it is kept
as released and the notes' Finding A is a unit test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.errors import PgdatError
from pgdat.methods.base import Number, OneOf, StepContext, craft
from pgdat.methods.facts import MethodFacts, register_method

TAIL_REDUCTIONS, TAIL_SIGNS = ("pairwise", "as_released"), ("contrastive", "as_written")
VARIANTS = {"paper_intent": ("pairwise", "contrastive"), "as_released": ("as_released", "as_written")}


def _counts(ctx: StepContext) -> torch.Tensor:
    if ctx.class_counts is None:
        raise PgdatError("long-tailed methods need the training class counts (the trainer provides them)")
    return ctx.class_counts.float().clamp_min(1)


def rbl_weights(counts: torch.Tensor, ae_hist: torch.Tensor) -> torch.Tensor:
    """omega_c = C * (E_c + 1e-5)^-1 / sum_k (E_k + 1e-5)^-1 with E_c = n_c (1 - (1 - 1/n_c)^{m_c}), m_c >= 1."""
    m = ae_hist.float().clamp_min(1)
    e = counts * (1 - (1 - 1 / counts) ** m)
    inv = 1 / (e + 1e-5)
    return len(counts) * inv / inv.sum()


def balanced_softmax_loss(logits: torch.Tensor, y: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Balanced Softmax: CE(z + log n, y) (prediction at test time uses the raw logits)."""
    return F.cross_entropy(logits.float() + counts.log(), y)


def tail_classes(num_classes: int) -> list[int]:
    """REAT's tail set {2*floor(C/3)+1, ..., C-1} (classes sorted head to tail)."""
    return list(range(2 * (num_classes // 3) + 1, num_classes))


def tail_penalty(features: torch.Tensor, y: torch.Tensor, counts: torch.Tensor, tail: list[int], *,
                 reduction: str, sign: str, margin: float = 1.0) -> torch.Tensor:
    """TAIL on penultimate features (B, D): anchors are the batch's tail-class examples; 0 if there are none.

    ``as_released``: (1/|T|) sum_i c_i K_i, c_i = mean_j s_ij W_ij, K_i = sum_j KL(p_i || q_j) / (B D).
    ``pairwise``: (1/|T|) sum_i mean_j W_ij term_ij / D, term = s KL (``as_written``) or KL for same-class pairs and
    -min(KL, margin) otherwise (``contrastive``; bounded below by -margin max(W) / D)."""
    q = F.log_softmax(features.float(), dim=1)  # log q_j over the D feature dimensions
    p = q.detach().exp()  # p_i = stopgrad(q_i)
    kl = (p * p.clamp_min(1e-12).log()).sum(1, keepdim=True) - p @ q.T  # (B, B): KL(p_i || q_j)
    w = (counts.sum() / counts).sqrt()[y]
    pair_w = w[:, None] + w[None, :]
    same = y[:, None] == y[None, :]
    s = torch.where(same, -1.0, 1.0)
    anchors = torch.isin(y, torch.tensor(tail, device=y.device))
    n_anchor = anchors.sum().clamp_min(1)
    b, d = features.shape
    if reduction == "as_released":
        c = (s * pair_w).mean(dim=1)
        k_bar = kl.sum(dim=1) / (b * d)
        per_anchor = c * k_bar
    elif reduction == "pairwise":
        if sign == "contrastive":  # pull same class (minimise KL), push other classes (maximise KL up to margin)
            term = torch.where(same, kl, -kl.clamp(max=margin))
        else:
            term = s * kl
        per_anchor = (pair_w * term).mean(dim=1) / d  # the released loss's per-entry (1/D) scale
    else:
        raise PgdatError(f"tail_reduction must be one of {', '.join(TAIL_REDUCTIONS)} (got '{reduction}')")
    return (per_anchor * anchors).sum() / n_anchor


class PenultimateFeatures:
    """Captures the input of the model's last ``nn.Linear`` (the penultimate features, (B, D)) during a forward."""

    def __init__(self, model: nn.Module) -> None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise PgdatError("REAT needs a model whose head is an nn.Linear (for the penultimate features)")
        self.features: torch.Tensor | None = None
        self._handle = linears[-1].register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self.features = args[0]

    def close(self) -> None:
        self._handle.remove()


def _previous_histogram(ctx: StepContext, counts: torch.Tensor) -> torch.Tensor:
    """m (C,): the previous epoch's histogram of AE predictions (the training counts in the first epoch). At the
    first step of an epoch the running histogram rolls over; state lives in ``ctx.state`` (saved in checkpoints)."""
    st = ctx.state
    if "reat_epoch" not in st or int(st["reat_epoch"]) != ctx.epoch:
        st["reat_prev_hist"] = st["reat_hist"] if "reat_hist" in st else counts.clone()
        st["reat_hist"] = torch.zeros_like(counts)
        st["reat_epoch"] = torch.tensor(ctx.epoch)
    return st["reat_prev_hist"]


def _check_tail(where: str, params: dict) -> None:
    """Refuse TAIL settings that are unbounded below or that set an option the reduction ignores."""
    reduction, sign = VARIANTS[params["variant"]]
    reduction, sign = params["tail_reduction"] or reduction, params["tail_sign"] or sign
    if reduction == "pairwise" and sign == "as_written" and params["penalty_weight"] > 0:
        raise PgdatError(f"{where}: tail_reduction=pairwise with tail_sign=as_written is unbounded below (its "
                         "uncapped push on same-class pairs grows without limit as the features grow); use "
                         "tail_sign=contrastive (capped at margin) or variant=as_released, e.g. "
                         "method.params={variant: as_released}")
    if reduction == "as_released" and params["tail_sign"] == "contrastive":
        raise PgdatError(f"{where}: tail_sign=contrastive has no effect with tail_reduction=as_released (the released "
                         "collapsed form has only its own sign); drop tail_sign or use tail_reduction=pairwise")


REAT_REFERENCE = "https://github.com/GuanlinLee/REAT"
# PGD, then one outer loss on x_adv: REAT and its two baselines cost the same
PGD_COST = {"passes": lambda b: b.attack() + 1, "passes_rule": "steps*restarts + 1 (attack, loss on x_adv)"}


@register_method("reat", MethodFacts(
    paper="Li, Xu, Zhang 2023, Adversarial Training Over Long-Tailed Distribution (REAT)", reference=REAT_REFERENCE,
    **PGD_COST, relation=_check_tail, options={
        "variant": OneOf(tuple(VARIANTS)),
        "tail_reduction": OneOf(TAIL_REDUCTIONS, optional=True),
        "tail_sign": OneOf(TAIL_SIGNS, optional=True),
        "penalty_weight": Number(lo=0, hint="the released code uses 1 (an implicit weight); 0 drops TAIL"),
        "margin": Number(lo=0, hint="the cap (nats) on the push term of the contrastive TAIL; 1 by default, 0 drops "
                         "the push"),
    }))
def reat(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, variant: str = "as_released",
         tail_reduction: str | None = None, tail_sign: str | None = None, penalty_weight: float = 1.0,
         margin: float = 1.0) -> dict[str, torch.Tensor]:
    """REAT: RBL-weighted PGD, then Balanced Softmax + penalty_weight * TAIL on the adversarial examples."""
    reduction, sign = VARIANTS[variant]
    counts = _counts(ctx)
    w = rbl_weights(counts, _previous_histogram(ctx, counts))
    x_adv = craft(ctx, x, y, loss=lambda z, t: w[t] * F.cross_entropy(z.float(), t, reduction="none"))
    hook = PenultimateFeatures(model)
    try:
        logits = model(x_adv)
        feats = hook.features
    finally:
        hook.close()
    ctx.state["reat_hist"] += torch.bincount(logits.detach().argmax(1), minlength=len(counts)).float()
    bsl = balanced_softmax_loss(logits, y, counts)
    tail = tail_penalty(feats, y, counts, tail_classes(len(counts)), reduction=tail_reduction or reduction,
                        sign=tail_sign or sign, margin=margin)
    return {"loss": bsl + penalty_weight * tail, "loss_bsl": bsl.detach(), "loss_tail": tail.detach(),
            "logits_adv": logits}


@register_method("pgd_at_bsl", MethodFacts(
    paper="Ren et al. 2020, Balanced Meta-Softmax for Long-Tailed Visual Recognition (Balanced Softmax), as REAT's "
          "baseline", reference=REAT_REFERENCE, **PGD_COST))
def pgd_at_bsl(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
    """PGD-AT with the Balanced Softmax outer loss (REAT without TAIL, since RBL is inert)."""
    logits = model(craft(ctx, x, y))
    return {"loss": balanced_softmax_loss(logits, y, _counts(ctx)), "logits_adv": logits}


# Cui et al.'s class-balanced beta: 1 - beta^n_c must stay > 0 (beta = 1 divides by zero); 0 gives uniform weights
@register_method("pgd_at_reweight", MethodFacts(
    paper="Cui et al. 2019, Class-Balanced Loss Based on Effective Number of Samples, as REAT's baseline",
    reference=REAT_REFERENCE, **PGD_COST,
    options={"beta": Number(lo=0, hi=1, hi_open=True, hint="Cui et al. use 0.9999")}))
def pgd_at_reweight(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, beta: float = 0.9999
                    ) -> dict[str, torch.Tensor]:
    """PGD-AT with class-balanced re-weighting (Cui et al.): CE weighted by (1 - beta) / (1 - beta^{n_c}),
    normalised to mean 1 over classes."""
    counts = _counts(ctx)
    w = (1 - beta) / (1 - beta ** counts)
    w = w * len(w) / w.sum()
    logits = model(craft(ctx, x, y))
    return {"loss": F.cross_entropy(logits.float(), y, weight=w), "logits_adv": logits}

