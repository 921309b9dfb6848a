"""Robust evaluation as a cascade: each attack only sees the points still classified correctly, so clean and
robust accuracy come from the same examples and a point is robust only if every attack failed on it."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pgdat.attacks.autoattack import COMPONENTS
from pgdat.attacks.core import attack_mode, check_inputs
from pgdat.attacks.specs import ATTACKS, EvalAttack, parse_attacks
from pgdat.data.bundle import as_unit_float
from pgdat.errors import PgdatError
from pgdat.eval.checks import check_outputs, output_warnings
from pgdat.eval.progress import BatchEvent
from pgdat.eval.shard import Shard
from pgdat.eval.state import EvalState, fingerprint, open_state
from pgdat.killhook import EVAL_KILL_ENV, kill_at, kill_if_reached
from pgdat.memory import API_BATCH, Batcher, BatchOption
from pgdat.precision import resolve_precision
from pgdat.threat import UNIT_BOX, ThreatModel, parse_eps

Progress = Callable[[BatchEvent], None]


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate` on N examples.

    accuracy: attack spec -> accuracy in [0,1] under the cascade up to and including that attack (``clean`` first),
    so the last entry is the robust accuracy. flags: spec -> (N,) bool, correct under the cascade so far.
    seconds: wall time per attack. warnings: messages of the sanity checks that fired and of out-of-memory retries.
    """

    accuracy: dict[str, float]
    flags: dict[str, torch.Tensor]
    n: int
    eps: float
    norm: str
    seed: int
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 0  # the batch size the evaluation ended with (smaller than asked after out-of-memory halving)
    box: tuple[float, float] | None = UNIT_BOX  # pixel range of the perturbed inputs; None: only the eps-ball

    @property
    def robust(self) -> torch.Tensor:
        """(N,) bool: correct under every attack."""
        return list(self.flags.values())[-1]

    @property
    def robust_accuracy(self) -> float:
        return list(self.accuracy.values())[-1]

    def per_class(self, y: torch.Tensor, num_classes: int) -> dict[str, list[float]]:
        """Accuracy per class (spec -> list of C floats; NaN for classes absent from ``y``) under the cascade."""
        total = torch.bincount(y, minlength=num_classes).double()
        return {k: (torch.bincount(y[f], minlength=num_classes).double() / total).tolist()
                for k, f in self.flags.items()}

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "eps": self.eps, "norm": self.norm, "seed": self.seed,
                "seconds": self.seconds, "warnings": self.warnings, "batch_size": self.batch_size,
                "box": list(self.box) if self.box is not None else None}


def _predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batcher: Batcher) -> torch.Tensor:
    """Clean argmax predictions (N,) in batches of ``batcher.size``, in fp32, without gradients; the first batch's
    logits check that they are (B, C) and that every label y (N,) is one of the C classes (PgdatError)."""
    pred = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)

    def step(i: int, j: int) -> None:
        with torch.no_grad():
            logits = model(x[i:j])
        if i == 0:
            check_outputs(logits, y[i:j], labels=y)  # one sync for dtype, shape and every label's range
        pred[i:j] = logits.argmax(dim=1)

    batcher.run(x.shape[0], step, "clean accuracy")
    return pred


def _attack_seed(attack: EvalAttack, seed: int, k: int) -> int:
    """Seed of the k-th attack: the reference AutoAttack seeds every component with the same seed (so pgdat's
    cascade reproduces its run on the same points); pgdat's own attacks get seed + k."""
    return seed if attack.family in COMPONENTS else seed + k


def _begin(state: EvalState, attack: EvalAttack, device: torch.device, seed: int) -> None:
    """Start ``attack`` in ``state`` (unless a resumed state is already inside it)."""
    if state.current == attack.spec:
        return
    gen = torch.Generator(device=device).manual_seed(seed)
    state.current, state.start, state.pos, state.gen, state.elapsed = attack.spec, state.robust.clone(), 0, \
        gen.get_state(), 0.0


def _run_attack(model: nn.Module, attack: EvalAttack, x: torch.Tensor, y: torch.Tensor, state: EvalState, *,
                threat: ThreatModel, step_size: float | None, batcher: Batcher, seed: int, precision: str,
                progress: Progress | None = None) -> None:
    """Attack the still-robust points (those robust when the attack began) in batches from ``state.pos`` on and
    clear ``state.robust`` (N,) where the attack succeeds, as re-checked in fp32 (the attack may run in bf16/fp16,
    where a rounded argmax can invent a success). After each batch the state is saved and ``progress`` told."""
    _begin(state, attack, x.device, seed)
    idx = state.start.nonzero().squeeze(1)
    if idx.numel() == 0 or threat.eps == 0:
        return
    gen = torch.Generator(device=x.device)
    gen.set_state(state.gen)
    base, t0, elapsed0, robust = state.pos, time.perf_counter(), state.elapsed, state.robust
    kill = kill_at(EVAL_KILL_ENV)

    def step(i: int, j: int) -> None:
        b = idx[base + i:base + j]
        x_adv = attack.run(model, x[b], y[b], eps=threat.eps, norm=threat.norm, box=threat.box, step_size=step_size,
                           generator=gen, precision=precision, seed=seed)
        if threat.norm_of(x_adv.float() - x[b].float()).max() > threat.eps * (1 + 1e-4) + 1e-6:
            raise RuntimeError(f"attack {attack.spec} left the {threat.norm} ball of radius {threat.eps}")
        with torch.no_grad():  # fp32, outside any autocast: only a success that holds in fp32 counts
            robust[b] = model(x_adv.float()).argmax(dim=1).eq(y[b])
        state.pos, state.gen, state.batch_size = base + j, gen.get_state(), batcher.size
        state.elapsed = elapsed0 + time.perf_counter() - t0
        state.save()
        kill_if_reached(-(-j // batcher.size), kill)  # tests: a real SIGKILL after this attack's n-th batch
        if progress is not None:
            done = base + j
            progress(BatchEvent(attack.spec, -(-done // batcher.size), -(-done // batcher.size)
                                + -(-(idx.numel() - done) // batcher.size), idx.numel() - done,
                                int(robust.sum()), robust.numel(), state.elapsed))

    batcher.run(idx.numel() - base, step, f"attack {attack.spec}")


def _cascade(model: nn.Module, parsed: list[EvalAttack], x: torch.Tensor, y: torch.Tensor, state: EvalState, *,
             threat: ThreatModel, step_size: float | None, batcher: Batcher, seed: int, precision: str,
             progress: Progress | None) -> None:
    """Run (or go on with) the cascade on (x (n, C, H, W), y (n,)): ``state.flags`` gets clean and every attack."""
    if "clean" not in state.flags:
        t0 = time.perf_counter()
        state.robust = _predict(model, x, y, batcher).eq(y)
        state.flags["clean"], state.seconds["clean"] = state.robust.clone(), time.perf_counter() - t0
        state.save()
    for k, attack in enumerate(a for a in parsed if a.family != "clean"):
        if attack.spec in state.flags:
            continue
        _run_attack(model, attack, x, y, state, threat=threat, step_size=step_size, batcher=batcher,
                    seed=_attack_seed(attack, seed, k), precision=precision, progress=progress)
        state.flags[attack.spec], state.seconds[attack.spec] = state.robust.clone(), state.elapsed
        state.current, state.start, state.pos, state.gen, state.elapsed = None, None, 0, None, 0.0
        state.save()


def _radii(eps: float | str, step_size: float | str | None, norm: str,
           box: tuple[float, float] | None) -> tuple[float, float | None]:
    """eps and step_size as floats in pixel units (``"8/255"`` accepted); linf radii above the [0,1] range refused."""
    in_box = norm if box is not None else None  # without an image box, no "did you mean 8/255?" guess
    return (parse_eps(eps, "eps", norm=in_box),
            None if step_size is None else parse_eps(step_size, "step_size", norm=in_box))


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attacks: str | list[str],
    eps: float | str,
    norm: str = "linf",
    batch_size: int = 256,
    step_size: float | str | None = None,
    seed: int = 0,
    precision: str = "fp32",
    checks: bool = True,
    on_oom: str = "raise",
    batch_option: BatchOption = API_BATCH,
    box: tuple[float, float] | None = UNIT_BOX,
    progress: Progress | None = None,
    state_path: str | Path | None = None,
    distributed: bool = False,
) -> EvalResult:
    """Accuracy of ``model`` on (x (N, C, H, W) in [0,1] or uint8, y (N,)) under a cascade of attacks.

    attacks: specs such as ``"clean,pgd-20,autoattack"`` (autoattack: its standard components apgd-ce, apgd-t,
    fab-t, square, one cascade step each). eps: radius in pixel units of [0,1] images, a number or a
    string such as ``"8/255"`` (an linf eps above 1 is refused: "did you mean 8/255?"). step_size: for pgd/cw,
    same units, default 2.5*eps/K. precision: autocast for attack passes; every success is re-checked in fp32
    before it counts.
    The model is evaluated in eval mode (with a loud warning if it was in train mode) and its mode is restored.
    on_oom: running out of memory at ``batch_size`` either raises a PgdatError with the largest batch size that
    fits (``raise``) or halves the batch size and goes on, with a warning kept in ``warnings`` (``halve``: results
    do not depend on the batch size except through the attacks' random starts). batch_option: how the caller's
    user sets the batch size (named in those messages). box: the pixel range x and every perturbed input must lie in
    (default [0,1]); None for data outside [0,1] by construction (unclipped injected features): x may take any
    finite values and perturbations are held to the eps-ball only (no clamp), so the attacks stay inside the threat
    model instead of moving out-of-box pixels by more than eps.
    progress: called with a :class:`BatchEvent` after every attacked batch (e.g. :class:`PrintProgress`).
    state_path: resume file, rewritten after every batch and removed at the end; if it exists (from a killed run
    of the same evaluation) the evaluation goes on from it, to the result of an uninterrupted run.
    distributed: under torchrun, shard the points over the ranks (rank r: points r::world; its state file gets
    ``.rank{r}``) and gather one result on every rank.
    """
    if batch_size < 1:
        raise PgdatError(f"batch_size must be >= 1 (got {batch_size})")
    eps, step_size = _radii(eps, step_size, norm, box)
    threat = ThreatModel(norm, eps, tuple(box) if box is not None else None)
    parsed = parse_attacks(attacks)
    x = as_unit_float(x) if x.dtype == torch.uint8 else x
    check_inputs(x, y, threat.box)
    precision = resolve_precision(precision, x.device)
    shard = Shard.current() if distributed else Shard()
    n, x, y = int(y.numel()), shard.take(x), shard.take(y)
    if state_path is not None and shard.world > 1:
        state_path = Path(f"{state_path}.rank{shard.rank}")
    key = {"attacks": [a.spec for a in parsed], "eps": float(eps), "norm": norm, "seed": seed, "precision": precision,
           "step_size": step_size, "box": list(threat.box) if threat.box else None, "shard": [shard.rank, shard.world]}
    state, _ = open_state(state_path, fingerprint(model, x, y, key) if state_path else key, x.device)
    batcher = Batcher(state.batch_size or batch_size, x.device, batch_option, on_oom)
    if model.training:
        warnings.warn("evaluate() got a model in train mode: BatchNorm/dropout would make the attack and the "
                      "accuracy wrong, so it is switched to eval mode for the evaluation (and restored after)",
                      stacklevel=2)
    with attack_mode(model, "eval"):
        _cascade(model, parsed, x, y, state, threat=threat, step_size=step_size, batcher=batcher, seed=seed,
                 precision=precision, progress=progress)
        notes = output_warnings(model, x[:batcher.size], y[:batcher.size]) if checks else []
    flags = {k: shard.gather(v, n) for k, v in state.flags.items()}
    seconds = {k: shard.max(v, x.device) for k, v in state.seconds.items()}
    state.remove()
    accuracy = {k: float(v.double().mean()) if n else float("nan") for k, v in flags.items()}
    for w in notes:
        warnings.warn(w, stacklevel=2)
    return EvalResult(accuracy=accuracy, flags=flags, n=n, eps=eps, norm=norm, seed=seed, seconds=seconds,
                      warnings=batcher.notes + notes, batch_size=batcher.size, box=threat.box)


def _one_step(attack: EvalAttack) -> EvalAttack:
    """``attack`` with one step and one restart where it takes a step count (same spec name, for messages)."""
    builder, _, takes_steps = ATTACKS.get(attack.family)
    return dataclasses.replace(attack, steps=1, restarts=1, run=builder(1, 1)) if takes_steps else attack


def check_batch_fits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attacks: str | list[str],
                     eps: float | str, norm: str = "linf", batch_size: int = 256, step_size: float | str | None = None,
                     seed: int = 0,
                     precision: str = "fp32", batch_option: BatchOption = API_BATCH,
                     box: tuple[float, float] | None = UNIT_BOX) -> None:
    """Preflight: the clean pass and one step of every attack of the cascade on a full batch (the first
    ``batch_size`` points, all treated as still robust, as late in training when most points are), so that a batch
    size that does not fit fails now with a PgdatError naming ``batch_option`` and the largest size that fits, not
    hours later. One step of pgd-K/cw-K needs the memory of every step at 1/K of the work. x: (N, C, H, W) in [0,1]
    or uint8; y: (N,); eps and step_size as for :func:`evaluate`. Nothing is returned; the model's mode is restored.
    """
    eps, step_size = _radii(eps, step_size, norm, box)
    threat, parsed = ThreatModel(norm, eps, tuple(box) if box is not None else None), parse_attacks(attacks)
    n = min(batch_size, x.shape[0])
    xb, yb = x[:n], y[:n]
    xb = as_unit_float(xb) if xb.dtype == torch.uint8 else xb
    precision = resolve_precision(precision, xb.device)
    batcher = Batcher(batch_size, xb.device, batch_option, "raise")
    with attack_mode(model, "eval"):
        _predict(model, xb, yb, batcher)
        for attack in (_one_step(a) for a in parsed if a.family != "clean"):
            everyone = EvalState(key={}, robust=torch.ones(n, dtype=torch.bool, device=xb.device))
            _run_attack(model, attack, xb, yb, everyone, threat=threat, step_size=step_size, batcher=batcher,
                        seed=seed, precision=precision)
