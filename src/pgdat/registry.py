"""Registries: the only place where a string becomes an object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pgdat.errors import PgdatError

T = TypeVar("T")


def plural(kind: str) -> str:
    """English plural of a registry kind: "attack loss" -> "attack losses", "model" -> "models"."""
    return f"{kind}es" if kind.endswith(("s", "x", "sh", "ch")) else f"{kind}s"


class Registry(dict, Generic[T]):
    """A name -> object dict filled by the :meth:`register` decorator.

    ``kind`` names what is registered ("model", "attack", ...) so lookups of an unknown name raise a
    :class:`PgdatError` that lists the valid names.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            for key in (name, *aliases):
                if key in self:
                    raise KeyError(f"{self.kind} '{key}' is registered twice")
                self[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            valid = ", ".join(sorted(self))
            raise PgdatError(f"unknown {self.kind} '{name}'; valid {plural(self.kind)}: {valid}") from None
