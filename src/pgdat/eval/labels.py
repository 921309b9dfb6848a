"""Names that say which attacks produced a number, for metrics, plots, tables and reports: the per-epoch curve is
a cheap attack ("PGD-10, per-epoch"), the final number a cascade ("APGD-CE > APGD-T", "AutoAttack (standard)")."""

from __future__ import annotations

from pgdat.attacks.autoattack import COMPONENTS, STANDARD, reference_version
from pgdat.attacks.specs import expand_specs


def per_epoch_label(spec: str) -> str:
    """``pgd-10`` -> ``PGD-10, per-epoch`` (the per-epoch robust curve; never the robust accuracy to quote)."""
    return f"{spec.strip().upper()}, per-epoch"


def cascade_label(specs: str | list[str]) -> str:
    """The attacks of a final evaluation, in cascade order, without ``clean``: ``APGD-CE > APGD-T``, or
    ``PGD-20 > AutoAttack (standard)`` when the four standard components run in their order; with the reference
    package's version where a component comes from it."""
    items = [s for s in expand_specs(specs) if s != "clean"]
    if not items:
        return "clean only"
    names, i = [], 0
    while i < len(items):
        if tuple(items[i:i + len(STANDARD)]) == STANDARD:
            names.append("AutoAttack (standard)")
            i += len(STANDARD)
        else:
            names.append(items[i].upper())
            i += 1
    text = " > ".join(names)
    if any(s in COMPONENTS for s in items):
        text += f" (reference pyautoattack {reference_version()})"
    return text
