"""User-facing errors: every bad option becomes a :class:`PgdatError` with an actionable message."""

from __future__ import annotations


class PgdatError(ValueError):
    """A problem with user input (option, config key, file) that the user can fix; the message says how."""
