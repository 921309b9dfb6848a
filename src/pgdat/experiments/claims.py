"""A paper's claims as testable comparisons, and their verdicts over seeds.

A :class:`Claim` says ``left OP right`` about an experiment's per-seed metrics (a metric name, or a constant on the
right). :func:`evaluate` computes each side's mean and 95% t-interval over seeds and the verdict from the paired
per-seed difference (the seeds are paired: seed ``s`` of every run shares its seed offset):

- two or more seeds: the 95% t-interval of ``left - right`` (``right - left`` for ``<``) lies above 0: ``shown``;
  below 0: ``not shown``; contains 0: ``inconclusive``.
- one seed: no interval exists. The verdict is the sign of the one difference when it exceeds the claim's
  ``resolution`` (the smallest difference the measurement can resolve, in the metric's units), else ``inconclusive``;
  the line says ``single seed``. A single-seed verdict is a direction, not a test.
- a metric the experiment did not produce (e.g. a run only the paper preset has): ``not measured``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pgdat.errors import PgdatError

VERDICTS = ("shown", "not shown", "inconclusive", "not measured")
OPS = (">", "<")
SINGLE_SEED_RULE = ("single seed: no interval; verdict = sign of the one difference when |difference| > the claim's "
                    "resolution, else inconclusive (run --seeds 3 for a t-interval)")
MULTI_SEED_RULE = ("95% t-interval over seeds of the paired difference: above 0 shown, below 0 not shown, "
                   "containing 0 inconclusive")


@dataclass(frozen=True)
class Claim:
    """One testable comparison: ``left op right``, measured per seed.

    name: short id (unique within the experiment). statement: the paper's claim in words. left/right: metric names
    (right may be a constant). source: paper and section/figure. paper_scale: the data, model and budget the paper
    used. resolution: the smallest difference the measurement resolves (metric units; single-seed rule only).
    unit: printed after values ("%" for accuracies in percent, "" otherwise).
    """

    name: str
    statement: str
    left: str
    op: str
    right: str | float
    source: str
    paper_scale: str
    resolution: float = 0.0
    unit: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise PgdatError(f"claim '{self.name}': op must be one of {', '.join(OPS)} (got '{self.op}'), e.g. '>'")
        if self.resolution < 0:
            raise PgdatError(f"claim '{self.name}': resolution must be >= 0 (got {self.resolution}), e.g. 1.0")


@dataclass(frozen=True)
class Interval:
    """Mean over seeds and the 95% t-interval half-width (None with one seed)."""

    mean: float
    half: float | None
    n: int

    def text(self, unit: str = "") -> str:
        """``mean ± half`` with 2 decimals, more for small values (3 significant digits of the larger of the two:
        a kernel distance of 0.0123 must not print as 0.01)."""
        d = decimals(max(abs(self.mean), abs(self.half or 0.0)))
        if self.half is None:
            return f"{self.mean:.{d}f}{unit}"
        return f"{self.mean:.{d}f} ± {self.half:.{d}f}{unit}"


def decimals(magnitude: float) -> int:
    """Decimals that show ``magnitude`` to 3 significant digits, at least 2 and at most 8 (2 for 0)."""
    if not magnitude > 0 or not math.isfinite(magnitude) or magnitude >= 1:
        return 2
    return min(8, max(2, 2 - math.floor(math.log10(magnitude))))


def t_quantile(df: int) -> float:
    """The two-sided 95% critical value of Student's t with ``df`` >= 1 degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def interval(values: list[float]) -> Interval:
    """Mean and 95% t-interval half-width of ``values`` (one per seed; half None for a single value)."""
    n = len(values)
    if n == 0:
        raise PgdatError("a claim needs at least one seed's value")
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, None, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, t_quantile(n - 1) * sd / math.sqrt(n), n)


@dataclass(frozen=True)
class ClaimResult:
    """A claim's measured sides, the paired difference (oriented so that > 0 supports the claim) and the verdict."""

    claim: Claim
    left: Interval | None
    right: Interval | None
    diff: Interval | None
    verdict: str
    rule: str
    missing: tuple[str, ...] = ()  # metric names no seed produced ("not measured")

    def line(self) -> str:
        """One summary line: verdict, claim, both sides as mean ± 95% CI, the difference and the seed count."""
        c = self.claim
        head = f"[{self.verdict}] {c.name}: {c.statement}"
        if self.diff is None:
            return f"{head} (no value for {', '.join(self.missing)} in this preset)"
        assert self.left is not None and self.right is not None
        right = (f"{c.right} {self.right.text(c.unit)}" if isinstance(c.right, str)
                 else f"{self.right.mean:g}{c.unit}")
        seeds = "single seed" if self.diff.n == 1 else f"{self.diff.n} seeds, 95% CI"
        return (f"{head} | {c.left} {self.left.text(c.unit)} {c.op} {right} | difference "
                f"{self.diff.text(c.unit)} ({seeds})")

    def to_dict(self) -> dict[str, Any]:
        out = {"claim": asdict(self.claim), "verdict": self.verdict, "rule": self.rule, "line": self.line()}
        for side in ("left", "right", "diff"):
            iv = getattr(self, side)
            out[side] = None if iv is None else {"mean": iv.mean, "ci95_half": iv.half, "n": iv.n}
        return out


def _side(key: str | float, metrics: dict[str, float]) -> float | None:
    return float(key) if not isinstance(key, str) else metrics.get(key)


def verdict(diff: Interval, resolution: float) -> str:
    """The verdict from the oriented difference (> 0 supports the claim): see the module docstring."""
    if diff.half is None:
        if abs(diff.mean) <= resolution:
            return "inconclusive"
        return "shown" if diff.mean > 0 else "not shown"
    lo, hi = diff.mean - diff.half, diff.mean + diff.half
    return "shown" if lo > 0 else "not shown" if hi < 0 else "inconclusive"


def evaluate(claim: Claim, per_seed: list[dict[str, float]]) -> ClaimResult:
    """The claim's verdict over ``per_seed`` (one metrics dict per seed, all from the same preset)."""
    pairs = [(_side(claim.left, m), _side(claim.right, m)) for m in per_seed]
    if not pairs or any(a is None or b is None for a, b in pairs):
        sides = [claim.left] + ([claim.right] if isinstance(claim.right, str) else [])
        missing = tuple(k for k in sides if not per_seed or any(k not in m for m in per_seed))
        return ClaimResult(claim, None, None, None, "not measured", "", missing)
    lefts = [float(a) for a, _ in pairs]  # type: ignore[arg-type]
    rights = [float(b) for _, b in pairs]  # type: ignore[arg-type]
    sign = 1.0 if claim.op == ">" else -1.0
    diff = interval([sign * (a - b) for a, b in zip(lefts, rights, strict=True)])
    rule = SINGLE_SEED_RULE if diff.n == 1 else MULTI_SEED_RULE
    return ClaimResult(claim, interval(lefts), interval(rights), diff, verdict(diff, claim.resolution), rule)


def check_claims(claims: tuple[Claim, ...], experiment: str) -> None:
    """Refuse duplicate claim names (the regression guard and docs look claims up by name)."""
    names = [c.name for c in claims]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PgdatError(f"experiment '{experiment}': claim names must be unique (repeated: {', '.join(dup)})")
