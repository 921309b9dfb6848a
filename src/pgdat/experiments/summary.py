"""One seed's summary of an experiment: ``summary.json``, ``summary.md`` and the runs' ``report.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgdat.checkpoint import atomic_write_bytes


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
