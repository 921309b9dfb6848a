"""Threat models: the geometry of an Lp ball intersected with the [0,1] image box, written once.

Every attack in pgdat draws its projection, steepest-ascent step and random start from a :class:`ThreatModel`.
Images are float tensors in [0,1] of shape (B, C, H, W); eps and step sizes are in the same pixel units
(so eps = 8/255 for the usual CIFAR-10 Linf threat). ``box=None`` drops the image box for data that lies outside
[0,1] by construction (unclipped injected features): perturbed inputs are then only held to the eps-ball.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pgdat.errors import PgdatError

NORMS = ("linf", "l2")
_TINY = 1e-12
UNIT_BOX = (0.0, 1.0)
# attack.box name -> box; ``auto`` (the default) is resolved from the data: none where the dataset declares images
# outside [0,1] (DatasetInfo.in_unit_box False), else unit
# units a radius may be written in: 1 = the [0,1] image range pgdat works in, 255 = 0-255 pixel levels
PIXEL_SCALES = (1.0, 255.0)
BOXES: dict[str, tuple[float, float] | None] = {"auto": UNIT_BOX, "unit": UNIT_BOX, "none": None}


def parse_number(value: str | float, name: str = "eps") -> float:
    """Parse a decimal (``0.031``) or a fraction (``8/255``) into a float; any sign, ``nan`` and ``inf`` pass.

    name: what the value is, for the error message (``eps``, ``--eps``, ...).
    """
    if isinstance(value, bool):
        raise PgdatError(f"{name} must be a number, got {value!r}; write it like 8/255 or 0.031")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise PgdatError(f"cannot read '{value}' as a number: write {name} like 8/255 or 0.031") from None


def parse_eps(value: str | float, name: str = "eps", *, norm: str | None = None, scale: float = 1.0) -> float:
    """Parse a radius or step size (``8/255``, ``0.031``) into pixel units of [0,1] images: a finite number >= 0,
    else a PgdatError that names ``name`` and the value (``nan``, ``inf``, ``-0.1`` and ``1e999`` are refused here,
    not in an attack).

    scale: the pixel range ``value`` is written in: 1 (the default, images in [0,1]) or 255 (0-255 pixel levels, so
    ``8`` means 8/255); the result is ``value / scale``. norm: with ``"linf"``, a result above 1 (more than the whole
    [0,1] image range, almost always a 0-255 value such as ``8``) is refused with "did you mean 8/255?"; pass None
    where no [0,1] image box applies (data outside [0,1]) or the norm is not known.
    """
    number = parse_number(value, name)
    if not math.isfinite(number) or number < 0:
        raise PgdatError(f"{name} must be a finite number >= 0, got '{value}'; write it like 8/255 or 0.031")
    if scale not in PIXEL_SCALES:
        raise PgdatError(f"the pixel scale of {name} must be one of {', '.join(f'{s:g}' for s in PIXEL_SCALES)} "
                         f"(1: images in [0,1], 255: 0-255 pixel levels), got {scale!r}")
    eps = number / scale
    if norm == "linf" and eps > 1.0:
        raise PgdatError(f"{name}={value} is an linf radius larger than the whole [0,1] image range: pgdat's images "
                         f"are in [0,1], so did you mean {number:g}/255? Write it as {number:g}/255 (or give it in "
                         "0-255 pixel levels explicitly, e.g. --eps-scale 255)")
    return eps + 0.0  # -0.0 -> 0.0


def resolve_box(name: str, data_in_unit_box: bool = True) -> str:
    """The ``attack.box`` setting ``name`` (auto | unit | none) resolved for a dataset: ``unit`` or ``none``.

    auto: ``none`` when the data may lie outside [0,1] (``data_in_unit_box`` False), else ``unit``. An explicit
    ``unit`` on such data is refused: evaluation would reject the images and training would clamp them.
    """
    if name not in BOXES:
        raise PgdatError(f"unknown box '{name}'; valid boxes: {', '.join(BOXES)}")
    if name == "auto":
        return "unit" if data_in_unit_box else "none"
    if name == "unit" and not data_in_unit_box:
        raise PgdatError("attack.box=unit, but the dataset's images may lie outside [0,1] (inject_features with "
                         "clip_injected: false): set attack.box=none or auto (eps-ball only), or clip_injected: true")
    return name


def _norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of ``delta`` (B, ...) as (B, 1, 1, 1)-broadcastable tensor."""
    flat = delta.flatten(1)
    n = flat.abs().amax(dim=1) if norm == "linf" else flat.norm(p=2, dim=1)
    return n.view(-1, *([1] * (delta.dim() - 1)))


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each image, intersected with the image box.

    norm: ``"linf"`` or ``"l2"``. eps: radius in pixel units (>= 0). box: (lo, hi) pixel range perturbed images
    are clamped to (default [0,1]); None: no box, only the ball (for data outside [0,1], e.g. unclipped injected
    features, where clamping to [0,1] would move pixels by more than eps).
    """

    norm: str
    eps: float
    box: tuple[float, float] | None = UNIT_BOX

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise PgdatError(f"unknown norm '{self.norm}'; valid norms: {', '.join(NORMS)}")
        if not math.isfinite(self.eps) or self.eps < 0:
            raise PgdatError(f"eps must be a finite number >= 0 (got {self.eps}); write it like 8/255")
        if self.box is not None:
            lo, hi = self.box
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise PgdatError(f"box must be (lo, hi) with finite lo < hi, or None for no box (got {self.box})")

    def norm_of(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-example norm of a perturbation (B, C, H, W) -> (B,)."""
        return _norms(delta, self.norm).flatten()

    def project_ball(self, delta: torch.Tensor, radius: float | None = None) -> torch.Tensor:
        """Project ``delta`` onto the ball of ``radius`` (default eps)."""
        r = self.eps if radius is None else radius
        if self.norm == "linf":
            return delta.clamp(-r, r)
        n = _norms(delta, "l2")
        return delta * torch.clamp(r / (n + _TINY), max=1.0)

    def clamp_box(self, x_adv: torch.Tensor) -> torch.Tensor:
        """``x_adv`` clamped into the box (unchanged when ``box`` is None)."""
        return x_adv if self.box is None else x_adv.clamp(*self.box)

    def project_box(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Shrink ``delta`` so that ``x + delta`` stays in the box (unchanged when ``box`` is None)."""
        return delta if self.box is None else (x + delta).clamp(*self.box) - x

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Project onto ball ∩ box. For Linf this is exact; for L2, ball then box (the standard approximation,
        which never leaves the ball because clamping into the box only shrinks each coordinate's magnitude)."""
        return self.project_box(x, self.project_ball(delta))

    def ascent_direction(self, grad: torch.Tensor) -> torch.Tensor:
        """Steepest-ascent direction of unit norm: sign(g) for Linf, g/||g||_2 for L2 (zero where g = 0)."""
        if self.norm == "linf":
            return grad.sign()
        # divide by the per-example max first: an additive epsilon (g / (||g|| + tiny)) shrinks the step of an
        # example whose gradient is tiny (a confidently classified one) and its squares can underflow in the norm
        top = _norms(grad, "linf")
        g = grad / torch.where(top > 0, top, torch.ones_like(top))  # max |g| = 1, or g = 0
        return g / _norms(g, "l2").clamp_min(1.0)  # ||g|| >= 1 unless g = 0

    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """One steepest-ascent step of length ``step_size`` (not yet projected)."""
        return delta + step_size * self.ascent_direction(grad)

    def random_init(
        self, x: torch.Tensor, *, scale: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A random perturbation in the ball of radius ``scale * eps``, shaped like ``x`` (float32).

        Linf: uniform in the cube. L2: uniform in the ball (Gaussian direction, radius eps * U^(1/d)).
        Not yet clipped to the box. Sampled on the generator's device, then moved to ``x.device``.
        """
        radius = scale * self.eps
        gen_device = generator.device if generator is not None else x.device
        shape = x.shape
        if self.norm == "linf":
            u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float32)
            return ((2 * u - 1) * radius).to(x.device)
        d = x[0].numel()
        g = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
        g = g / (_norms(g, "l2") + _TINY)
        r = torch.rand((shape[0],), generator=generator, device=gen_device, dtype=torch.float32) ** (1.0 / d)
        return (g * (radius * r).view(-1, *([1] * (len(shape) - 1)))).to(x.device)
