"""Reading run directories and the comparison table shared by ``pgdat report`` and ``pgdat compare``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pgdat.errors import PgdatError

# forward/backward passes per training example and step: attack steps x restarts (each an input-gradient pass)
# plus the passes of the outer loss. Methods not listed report None.
PASSES = {
    "standard": lambda a: 1,
    "pgd_at": lambda a: a["steps"] * a["restarts"] + 1,
    "pgd_at_te": lambda a: a["steps"] * a["restarts"] + 1,
    "trades": lambda a: a["steps"] * a["restarts"] + 2,
    "trades_te": lambda a: a["steps"] * a["restarts"] + 2,
    "mart": lambda a: a["steps"] * a["restarts"] + 2,
    "awp": lambda a: a["steps"] * a["restarts"] + 2,
}


@dataclass
class Run:
    """A run directory read back: name, resolved config, metrics header and per-epoch rows, final evaluation."""

    path: Path
    config: dict[str, Any]
    header: dict[str, Any]
    history: list[dict[str, Any]]
    final: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def load_run(path: str | Path) -> Run:
    """Read ``config.yaml``, ``metrics.jsonl`` and (when present) ``final.json`` of a run directory."""
    p = Path(path)
    if not (p / "metrics.jsonl").is_file() or not (p / "config.yaml").is_file():
        raise PgdatError(f"{p} is not a pgdat run directory (needs config.yaml and metrics.jsonl)")
    rows = [json.loads(s) for s in (p / "metrics.jsonl").read_text().splitlines() if s.strip()]
    header = rows[0] if rows and rows[0].get("type") == "header" else {}
    final = json.loads((p / "final.json").read_text()) if (p / "final.json").is_file() else {}
    return Run(p, yaml.safe_load((p / "config.yaml").read_text()), header,
               [r for r in rows if r.get("type") != "header"], final)


def _final_acc(run: Run, which: str, key: str) -> float | None:
    block = run.final.get(which)
    if not block:
        return None
    return block["robust_accuracy"] if key == "robust" else block["accuracy"].get("clean")


def summary_row(run: Run) -> dict[str, Any]:
    """One comparison row: best (validation-selected) and last robust/clean test accuracy, the attacks behind the
    final robust numbers (``final_attacks``) and behind the per-epoch curve (``per_epoch_attack``), wall time,
    passes."""
    method, attack = run.config["method"]["name"], run.config["attack"]
    passes = PASSES.get(method)
    wall = sum(m.get("time_train", 0) + m.get("time_eval", 0) for m in run.history)
    last = run.history[-1] if run.history else {}
    return {"run": run.name, "method": method, "eps": attack["eps"], "epochs": len(run.history),
            "best_epoch": run.final.get("best_epoch", last.get("best_epoch")),
            "best_robust": _final_acc(run, "best", "robust"), "last_robust": _final_acc(run, "last", "robust"),
            "best_clean": _final_acc(run, "best", "clean"), "last_clean": _final_acc(run, "last", "clean"),
            "final_attacks": run.final.get("robust_accuracy_by") or run.final.get("attacks"),
            "per_epoch_attack": next((m["robust_acc_by"] for m in run.history if m.get("robust_acc_by")), None),
            "wall_s": round(wall, 1),
            "passes_per_example": passes(attack) if passes else None}


def format_table(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as a Markdown table, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        w.writerows([[cell(r.get(c)) for c in cols] for r in rows])
        return buf.getvalue()
    if fmt != "md":
        raise PgdatError(f"--format must be md, csv or json (got '{fmt}')")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows])
