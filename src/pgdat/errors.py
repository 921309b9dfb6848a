"""User-facing errors: every bad option becomes a :class:`PgdatError` with an actionable message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class PgdatError(ValueError):
    """A problem with user input (option, config key, file) that the user can fix; the message says how."""


def yaml_value(value: object) -> str:
    """``value`` as written in a YAML override (for examples in messages): null, true/false, others as str."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def first_option(defaults: Mapping[str, object]) -> str:
    """The first ``name: default`` of ``defaults`` as YAML (for an example in a message), "" when empty."""
    return next((f"{k}: {yaml_value(v)}" for k, v in defaults.items()), "")


def unknown_options_error(what: str, unknown: Iterable[object], valid: Iterable[str], example: str = "") -> PgdatError:
    """The one "unknown option" message: ``{what} has no option {unknown}; valid options: {valid}[; e.g. {example}]``.

    what: the thing that was given the options, e.g. ``"method 'pgd_at'"``. unknown: the bad option names (sorted in
    the message). valid: the accepted names in their declared order ("none" when empty). example: a valid setting,
    e.g. ``"method.params={beta: 6.0}"``. Returned, not raised, so the caller's ``raise`` shows where it fails.
    """
    bad = ", ".join(sorted(str(u) for u in unknown))
    names = ", ".join(valid) or "none"
    return PgdatError(f"{what} has no option {bad}; valid options: {names}{'; e.g. ' + example if example else ''}")
