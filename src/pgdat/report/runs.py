"""Reading run directories and the comparison table shared by ``pgdat report`` and ``pgdat compare``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgdat.config.loader import load_yaml_file
from pgdat.errors import PgdatError
from pgdat.methods import passes_per_example


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

    @property
    def health_flags(self) -> list[str]:
        """The trainer's health flags (:mod:`pgdat.training.health`): ``final.json["health"]["flags"]``, else (a
        run without its final evaluation yet) :func:`~pgdat.training.health.run_flags` of the epochs."""
        from pgdat.training.health import recorded_flags

        return recorded_flags(self.final, self.history)


MAX_RUN_FILE_BYTES = 256 << 20  # metrics.jsonl of a long run with per-class rows is a few MB
_NUM = (int, float)


def _read(path: Path) -> str:
    """The text of a run file, size-bounded; a PgdatError naming it when it cannot be read as UTF-8."""
    size = path.stat().st_size
    if size > MAX_RUN_FILE_BYTES:
        raise PgdatError(f"{path} is {size} bytes (at most {MAX_RUN_FILE_BYTES}): not a pgdat run file")
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise PgdatError(f"{path} is not a UTF-8 text file: not a pgdat run file") from None


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise PgdatError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as e:  # JSONDecodeError, and integers too long to convert
        raise PgdatError(f"{where}: not valid JSON ({e})") from None


def _check(ok: bool, where: str, field: str, value: Any, want: str) -> None:
    if not ok:
        raise PgdatError(f"{where}: field '{field}' must be {want} (got {value!r:.80})")


def _is_num(v: Any, none: bool = False) -> bool:
    return (v is None and none) or (isinstance(v, _NUM) and not isinstance(v, bool))


def _check_row(row: Any, where: str) -> None:
    """A metrics row: a JSON object whose fields the report reads have the types it expects."""
    _check(isinstance(row, dict), where, "(line)", row, "a JSON object like {\"epoch\": 1, ...}")
    if row.get("type") == "header":
        return
    _check(isinstance(row.get("epoch"), int) and not isinstance(row.get("epoch"), bool), where, "epoch",
           row.get("epoch"), "an integer, e.g. 1")
    for key, value in row.items():
        if key.endswith("_acc") and not key.startswith("per_class") or key in ("time_train", "time_eval"):
            _check(_is_num(value, none=True), where, key, value, "a number or null, e.g. 0.5")
        elif key.startswith("per_class"):
            _check(isinstance(value, list) and all(_is_num(v, none=True) for v in value), where, key, value,
                   "a list of numbers, e.g. [0.9, 0.8]")
        elif key == "best_epoch":
            _check(_is_num(value, none=True), where, key, value, "an integer or null, e.g. 3")
        elif key == "health_flags":
            _check(isinstance(value, list) and all(isinstance(f, str) for f in value), where, key, value,
                   'a list of strings, e.g. ["training loss diverged: ..."]')


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(_read(path).splitlines(), 1):
        if line.strip():
            row = _json(line, f"{path} line {i}")
            _check_row(row, f"{path} line {i}")
            rows.append(row)
    return rows


def _check_final(final: Any, path: Path) -> dict[str, Any]:
    _check(isinstance(final, dict), str(path), "(file)", final, "a JSON object like {\"best\": {...}}")
    _check(_is_num(final.get("best_epoch"), none=True), str(path), "best_epoch", final.get("best_epoch"),
           "an integer or null")
    for which in ("best", "last"):
        block = final.get(which)
        if block:
            _check(isinstance(block, dict), str(path), which, block, "an object with accuracy and robust_accuracy")
            acc = block.get("accuracy")
            _check(isinstance(acc, dict) and all(_is_num(v) for v in acc.values()), str(path), f"{which}.accuracy",
                   acc, 'an object of attack -> accuracy, e.g. {"clean": 0.9}')
            _check(_is_num(block.get("robust_accuracy")), str(path), f"{which}.robust_accuracy",
                   block.get("robust_accuracy"), "a number, e.g. 0.45")
    return final


def _check_config(config: Any, path: Path) -> dict[str, Any]:
    where = str(path)
    _check(isinstance(config, dict), where, "(file)", config, "a mapping of sections like 'method: {name: pgd_at}'")
    method, attack = config.get("method"), config.get("attack")
    _check(isinstance(method, dict) and isinstance(method.get("name"), str), where, "method.name",
           method.get("name") if isinstance(method, dict) else method, "a method name, e.g. pgd_at")
    _check(isinstance(attack, dict), where, "attack", attack, "a mapping like {eps: 0.3, steps: 10}")
    _check(_is_num(attack.get("eps")), where, "attack.eps", attack.get("eps"), "a number, e.g. 0.3")
    for key in ("steps", "restarts"):
        _check(isinstance(attack.get(key), int) and not isinstance(attack.get(key), bool), where, f"attack.{key}",
               attack.get(key), "an integer, e.g. 10")
    return config


def is_run_dir(path: Path) -> bool:
    """A directory ``pgdat report`` can read: a run the Trainer logged (config.yaml and metrics.jsonl). An
    experiment's internal trainings (the induced experiment's students) keep only checkpoints and final.json."""
    return (path / "metrics.jsonl").is_file() and (path / "config.yaml").is_file()


def load_run(path: str | Path) -> Run:
    """Read ``config.yaml``, ``metrics.jsonl`` and (when present) ``final.json`` of a run directory; a malformed
    file is a one-line PgdatError naming the file (and line) and the field."""
    p = Path(path)
    if not is_run_dir(p):
        raise PgdatError(f"{p} is not a pgdat run directory (needs config.yaml and metrics.jsonl)")
    rows = _read_metrics(p / "metrics.jsonl")
    header = rows[0] if rows and rows[0].get("type") == "header" else {}
    final_path = p / "final.json"
    final = _check_final(_json(_read(final_path), str(final_path)), final_path) if final_path.is_file() else {}
    config = _check_config(load_yaml_file(p / "config.yaml", "run config"), p / "config.yaml")
    return Run(p, config, header, [r for r in rows if r.get("type") != "header"], final)


def _final_acc(run: Run, which: str, key: str) -> float | None:
    block = run.final.get(which)
    if not block:
        return None
    return block["robust_accuracy"] if key == "robust" else block["accuracy"].get("clean")


def run_passes(config: dict[str, Any]) -> int | None:
    """Passes per training example of a run's method with its attack and options, as the method declares them
    (:mod:`pgdat.methods.facts`); None for a method this pgdat does not have or options it does not accept."""
    method, attack = config["method"], config["attack"]
    params = method.get("params") or {}
    try:
        return passes_per_example(method["name"], attack["steps"], attack["restarts"], params)
    except (PgdatError, TypeError, KeyError):  # a run written by another version (its method or options unknown)
        return None


def summary_row(run: Run) -> dict[str, Any]:
    """One comparison row: best (validation-selected) and last robust/clean test accuracy, the attacks behind the
    final robust numbers (``final_attacks``) and behind the per-epoch curve (``per_epoch_attack``), wall time,
    passes."""
    method, attack = run.config["method"]["name"], run.config["attack"]
    wall = sum(m.get("time_train", 0) + m.get("time_eval", 0) for m in run.history)
    last = run.history[-1] if run.history else {}
    return {"run": run.name, "method": method, "eps": attack["eps"], "epochs": len(run.history),
            "best_epoch": run.final.get("best_epoch", last.get("best_epoch")),
            "best_robust": _final_acc(run, "best", "robust"), "last_robust": _final_acc(run, "last", "robust"),
            "best_clean": _final_acc(run, "best", "clean"), "last_clean": _final_acc(run, "last", "clean"),
            "final_attacks": run.final.get("robust_accuracy_by") or run.final.get("attacks"),
            "per_epoch_attack": next((m["robust_acc_by"] for m in run.history if m.get("robust_acc_by")), None),
            "wall_s": round(wall, 1),
            "passes_per_example": run_passes(run.config),
            "health": "; ".join(run.health_flags) or "ok"}


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
