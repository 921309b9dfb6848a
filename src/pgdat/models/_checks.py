"""Validation of architecture options: every bad value becomes a :class:`PgdatError` naming the option."""

from __future__ import annotations

from pgdat.errors import PgdatError


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``; raise :class:`PgdatError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PgdatError(f"model option '{name}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1); raise :class:`PgdatError` otherwise (e.g. a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise PgdatError(f"model option '{name}' must be a number in [0, 1), got {value!r}")
    return float(value)
