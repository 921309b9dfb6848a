"""``free_at`` (Shafahi et al., NeurIPS 2019, "Adversarial Training for Free!", ``ashafahi/free_adv_train``).

Each minibatch is replayed ``m`` times (m = 8 in the paper). Every replay is one forward/backward pass: its parameter
gradient drives that replay's optimizer step, and its gradient with respect to the perturbation, from the same
backward pass, moves it by a step of eps (sign for Linf, the unit-norm direction for L2). ``box`` says how the image
box is kept:

- ``clamp`` (default, as ``mahyarnajibi/FreeAdversarialTraining`` main_free.py): the forward pass sees
  clamp_box(x + delta); delta itself is only kept in the eps-ball (delta <- Proj_ball(delta + eps * sign(grad_delta))),
  so at a saturated pixel the clamp passes no gradient and delta stays where it was.
- ``project``: delta is projected onto ball ∩ box before every use and after every step, with the gradient taken
  at x + delta (a deliberate alternative: the model sees the same inputs, but delta differs at saturated pixels).

One delta of batch shape starts at zero once and is carried across replays *and* across minibatches (a warm start
for the next batch, as the authors' code does).

The trainer does the replaying: ``free_at`` declares ``replay_option = "m"``, so
:func:`pgdat.methods.build_method` binds ``replays = m`` and the trainer takes m optimizer steps on each minibatch,
the lr schedule advancing per optimizer step. One epoch is then m passes' worth of optimizer steps; the paper keeps
the step count of a standard run (80k iterations *including* replays), so divide ``train.epochs`` by m to compare
with a standard recipe.

State: delta (B, C, H, W) fp32 lives in ``ctx.state["free_delta"]`` and is saved in every checkpoint (a few MB at
CIFAR batch 128), so a resumed run continues from the very perturbation an uninterrupted run would use (bit-exact
resume). Before each use it is projected onto the current eps-ball (``clamp``) or ball ∩ box (``project``). A short
batch (the last one with ``data.drop_last=false``) uses and updates the first B rows; a batch of another image shape
restarts from zero.
Under DDP each process carries the delta of its own shard, and checkpoints hold the main process's, so a resumed
multi-process run restarts the other processes from that delta (single-process resume is exact).

``attack.eps`` (with its warm-up), ``norm`` and ``box`` are used; ``attack.steps``, ``step_size``, ``init``,
``restarts`` and ``bn_mode`` are not (there is no separate attack: the perturbation comes from the training pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.methods.base import Number, OneOf, StepContext, train_eps, train_threat
from pgdat.methods.facts import MethodFacts, register_method
from pgdat.methods.single_step import CO_MONITOR

FREE_DELTA = "free_delta"  # ctx.state key of the carried perturbation


def carried_delta(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The carried perturbation for a batch x (B, C, H, W): a view of the first B rows of ``state[FREE_DELTA]``
    (fp32), created at zero, grown with zero rows for a larger batch, restarted for another image shape."""
    d = state.get(FREE_DELTA)
    b = x.shape[0]
    if d is None or d.shape[1:] != x.shape[1:]:
        d = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    elif d.shape[0] < b:
        d = torch.cat([d.to(x.device), d.new_zeros((b - d.shape[0], *x.shape[1:]), device=x.device)])
    state[FREE_DELTA] = d = d.to(x.device)
    return d[:b]


FREE_BOXES = ("clamp", "project")


@register_method("free_at", MethodFacts(
    paper="Shafahi et al. 2019, Adversarial Training for Free!", reference="https://github.com/ashafahi/free_adv_train",
    step="large", passes=lambda b: b.params["m"],
    passes_rule="m (each replay is one pass; its backward also gives the perturbation's step)",
    forwards=lambda b: 0, forwards_rule="0",
    options={"m": Number(lo=1, integer=True, hint="Shafahi et al. use 8"), "box": OneOf(FREE_BOXES)}))
def free_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, m: int = 8, box: str = "clamp"
            ) -> dict[str, torch.Tensor]:
    """CE at clamp_box(x + delta) (``box=clamp``) or at x + Proj_{ball ∩ box}(delta) (``project``), delta carried;
    after the optimizer step delta takes a step of eps along the gradient of this same backward pass. ``m``: replays
    of each minibatch (read by the trainer through ``replays``; the loss itself does not depend on it)."""
    eps = train_eps(ctx)
    threat = train_threat(ctx, eps)
    x32 = x.float()
    rows = carried_delta(ctx.state, x)
    if box == "clamp":
        delta = threat.project_ball(rows).requires_grad_(True)  # a leaf: backward fills delta.grad for free
        leaf = delta
        logits = model(threat.clamp_box(x32 + delta).to(x.dtype))
    else:
        delta = threat.project(x32, rows)
        leaf = (x32 + delta).to(x.dtype).requires_grad_(True)  # d loss / d x_adv = d loss / d delta
        logits = model(leaf)

    def update() -> None:  # after the optimizer step, from the gradient of the same backward pass
        if leaf.grad is None:  # no backward happened (e.g. an out-of-memory probe gave up)
            return
        with torch.no_grad():
            grad = torch.nan_to_num(leaf.grad.float())  # an fp16 overflow step (skipped by the scaler) leaves inf/nan
            moved = threat.step(delta.detach(), grad, eps)
            rows.copy_(threat.project_ball(moved) if box == "clamp" else threat.project(x32, moved))

    ctx.after_step.append(update)
    return {"loss": F.cross_entropy(logits.float(), y), "logits_adv": logits}


free_at.replay_option = "m"  # type: ignore[attr-defined]
free_at.default_callbacks = CO_MONITOR  # type: ignore[attr-defined]
