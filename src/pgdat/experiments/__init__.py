"""One-command paper experiments (``pgdat repro NAME --preset cpu|paper --out DIR``).

Each experiment module registers ``run(preset: str, out: Path) -> list[dict]`` in :data:`EXPERIMENTS`; the rows it
returns are written by :func:`write_summary` as ``summary.json`` and ``summary.md`` (plots are the experiment's own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgdat.checkpoint import atomic_write_bytes
from pgdat.registry import Registry

Experiment = Callable[[str, Path], list[dict[str, Any]]]
EXPERIMENTS: Registry[Experiment] = Registry("experiment")
PRESETS = ("cpu", "paper")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def write_summary(out: Path, rows: list[dict[str, Any]], *, title: str, meta: dict[str, Any] | None = None,
                  runs: list[Path] | None = None) -> None:
    """``out/summary.json`` ({"title", "meta", "rows"}), ``out/summary.md`` (a Markdown table of the rows) and, when
    the experiment trained ``runs``, ``out/report.html`` (the same report as ``pgdat report``)."""
    out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"title": title, "meta": meta or {}, "rows": rows}, indent=2)
    atomic_write_bytes(out / "summary.json", lambda f: f.write(payload.encode()))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"# {title}", ""]
    if meta:
        lines += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(out / "summary.md", lambda f: f.write(text.encode()))
    if runs:
        from pgdat.report import write_report

        write_report(runs, out / "report.html", title=title)


def load_experiments() -> None:
    """Import the experiment modules so they register themselves."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
