"""Attack specs as strings (``clean``, ``fgsm``, ``pgd-20``, ``pgd-50x10``, ``cw-20``, ``autoattack``, ``apgd-ce``,
``apgd-t``, ...) for evaluation. The registry here is the only place an attack name becomes an attack."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pgdat.attacks.autoattack import COMPONENTS, STANDARD, autoattack, autoattack_component
from pgdat.attacks.fgsm import fgsm
from pgdat.attacks.pgd import pgd
from pgdat.errors import PgdatError
from pgdat.registry import Registry
from pgdat.threat import UNIT_BOX


@dataclass(frozen=True)
class EvalAttack:
    """A parsed attack spec. ``run(model, x, y, eps=, norm=, box=, step_size=, generator=, precision=, seed=)
    -> x_adv``; box: pixel range (lo, hi) or None (only the eps-ball; AutoAttack needs [0,1])."""

    spec: str
    family: str
    steps: int
    restarts: int
    run: Callable[..., torch.Tensor]

    @property
    def passes_per_example(self) -> int:
        """Forward/backward passes this attack spends per attacked example (AutoAttack counted as 0: unknown)."""
        return self.steps * self.restarts


Builder = Callable[[int, int], Callable[..., torch.Tensor]]
ATTACKS: Registry[tuple[Builder, int, bool]] = Registry("attack")  # name -> (builder, default steps, takes -K)


def _register(name: str, default_steps: int, takes_steps: bool) -> Callable[[Builder], Builder]:
    def deco(builder: Builder) -> Builder:
        ATTACKS.register(name)((builder, default_steps, takes_steps))
        return builder

    return deco


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s rule 2.5 * eps / steps (= 2/255 for PGD-10 at eps 8/255, as in Rice et al.)."""
    return 2.5 * eps / steps


@_register("clean", 0, False)
def _clean(steps: int, restarts: int) -> Callable[..., torch.Tensor]:
    """No attack: the images as they are (clean accuracy)."""
    return lambda model, x, y, **kw: x


@_register("fgsm", 1, False)
def _fgsm(steps: int, restarts: int) -> Callable[..., torch.Tensor]:
    """FGSM (Goodfellow et al. 2015): one signed-gradient step of eps from the clean image."""
    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
            box: tuple[float, float] | None = UNIT_BOX, generator=None, precision: str = "fp32", **_: object
            ) -> torch.Tensor:
        return fgsm(model, x, y, eps=eps, norm=norm, box=box, generator=generator, precision=precision, check=False)

    return run


def _pgd_family(loss: str) -> Builder:
    def build(steps: int, restarts: int) -> Callable[..., torch.Tensor]:
        def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
                box: tuple[float, float] | None = UNIT_BOX, step_size: float | None = None, generator=None,
                precision: str = "fp32", **_: object) -> torch.Tensor:
            alpha = default_step_size(eps, steps) if step_size is None else step_size
            return pgd(model, x, y, eps=eps, step_size=alpha, steps=steps, norm=norm, box=box, restarts=restarts,
                       loss=loss, generator=generator, precision=precision, stop_on_success=True, check=False)

        return run

    build.__doc__ = (f"PGD (Madry et al. 2018) on the {'cross-entropy' if loss == 'ce' else 'CW margin'} loss: K "
                     "steps of eval.step_size (default 2.5 eps / K), R restarts")
    return build


_register("pgd", 20, True)(_pgd_family("ce"))
_register("cw", 20, True)(_pgd_family("cw"))


def check_box_supported(specs: str | list[str], box: tuple[float, float] | None, where: str) -> None:
    """PgdatError before any work when ``specs`` hold an AutoAttack component but the data's image box is not
    [0,1] (AutoAttack clamps to [0,1]; e.g. unclipped injected features), naming the option ``where``."""
    aa = [s for s in expand_specs(specs) if s in COMPONENTS]
    if aa and box != UNIT_BOX:
        raise PgdatError(f"{where} runs {', '.join(aa)}, but the data lie outside [0,1] (attack box {box}), where "
                         "AutoAttack cannot judge: use pgd-K or cw-K there (they honour the box), or data in [0,1] "
                         "(clip_injected: true)")


def _check_unit_box(box: tuple[float, float] | None) -> None:
    if box != UNIT_BOX:
        raise PgdatError(f"AutoAttack clamps images to [0,1], so it cannot evaluate box={box}; use pgd-K or "
                         "cw-K (they honour the box) or data in [0,1] (clip_injected: true)")


def _aa_component(name: str) -> Builder:
    def build(steps: int, restarts: int) -> Callable[..., torch.Tensor]:
        def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, seed: int = 0,
                box: tuple[float, float] | None = UNIT_BOX, precision: str = "fp32", **_: object) -> torch.Tensor:
            _check_unit_box(box)
            return autoattack_component(model, x, y, name=name, eps=eps, norm=norm, seed=seed, precision=precision)

        return run

    build.__doc__ = f"AutoAttack's {name} alone (reference implementation, its standard settings)"
    return build


for _name in COMPONENTS:
    _register(_name, 0, False)(_aa_component(_name))
AUTOATTACK = "autoattack"  # in a list of specs: the standard components, one cascade step each (expand_specs)


@_register(AUTOATTACK, 0, False)
def _autoattack(steps: int, restarts: int) -> Callable[..., torch.Tensor]:
    """AutoAttack standard (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square), reference code; one cascade step
    per component."""

    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, seed: int = 0,
            box: tuple[float, float] | None = UNIT_BOX, precision: str = "fp32", **_: object) -> torch.Tensor:
        _check_unit_box(box)
        return autoattack(model, x, y, eps=eps, norm=norm, seed=seed, precision=precision)

    return run

_SPEC = re.compile(r"^(?P<name>[a-z][a-z-]*?)(?:-(?P<steps>\d+)(?:x(?P<restarts>\d+))?)?$")


def parse_attack(spec: str) -> EvalAttack:
    """Parse ``name``, ``name-K`` or ``name-KxR`` (K steps, R restarts) into an :class:`EvalAttack`."""
    m = _SPEC.match(spec.strip().lower())
    if m is None:
        raise PgdatError(f"cannot read attack spec '{spec}': write e.g. clean, fgsm, pgd-20, pgd-50x10, cw-20, "
                         f"autoattack; known attacks: {', '.join(sorted(ATTACKS))}")
    builder, default_steps, takes_steps = ATTACKS.get(m["name"])
    if m["steps"] is not None and not takes_steps:
        raise PgdatError(f"attack '{m['name']}' takes no step count (got '{spec}'); step counts apply to pgd and cw")
    steps = int(m["steps"]) if m["steps"] else default_steps
    restarts = int(m["restarts"]) if m["restarts"] else 1
    if takes_steps and (steps < 1 or restarts < 1):
        raise PgdatError(f"attack '{spec}': steps and restarts must be >= 1")
    return EvalAttack(spec=spec.strip().lower(), family=m["name"], steps=steps, restarts=restarts,
                      run=builder(steps, restarts))


def expand_specs(specs: str | list[str]) -> list[str]:
    """The spec strings of a comma-separated string or list, with ``autoattack`` replaced by its standard
    components (``apgd-ce, apgd-t, fab-t, square``), so each is one step of the cascade."""
    items = [s.strip().lower() for s in (specs.split(",") if isinstance(specs, str) else specs) if s.strip()]
    return [c for s in items for c in (STANDARD if s == AUTOATTACK else (s,))]


def parse_attacks(specs: str | list[str]) -> list[EvalAttack]:
    """Parse a comma-separated string or a list of specs (``autoattack`` expanded by :func:`expand_specs`);
    duplicates are an error."""
    items = expand_specs(specs)
    if not items:
        raise PgdatError("no attacks given: pass e.g. --attacks clean,pgd-20")
    parsed = [parse_attack(s) for s in items]
    names = [a.spec for a in parsed]
    if len(set(names)) != len(names):
        raise PgdatError(f"attack list has duplicates: {', '.join(names)} (autoattack already runs "
                         f"{', '.join(STANDARD)}); e.g. clean,pgd-20,autoattack")
    return parsed
