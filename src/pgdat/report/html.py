"""A self-contained HTML report of one or more runs: no network, every image embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import yaml

from pgdat.analysis.plots import class_names, evaluated_points, label_classes, percent, plain_text, plt
from pgdat.checkpoint import atomic_write_bytes
from pgdat.report.runs import Run, format_table, load_run, summary_row
from pgdat.report.seeds import SeedGroup, curve_stats, group_row, json_rows, seed_groups, text_rows

CURVE_KEYS = [("train", "-"), ("val", "--"), ("test", ":")]

# The page reports its own health: JS errors and images that failed to decode end up in #status (read by tests).
STATUS_JS = """
<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  const s = document.getElementById('status');
  const wide = document.documentElement.scrollWidth > document.documentElement.clientWidth ? 1 : 0;
  s.dataset.images = document.images.length; s.dataset.broken = bad; s.dataset.errors = window.__errors.length;
  s.dataset.overflow = wide;
  s.textContent = (bad === 0 && window.__errors.length === 0 && wide === 0) ? 'ok' : 'problems';
});
</script>"""

CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
.tbl{max-width:100%;overflow-x:auto}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:8px;font-size:12px;max-height:300px;overflow:auto}
img{max-width:100%;border:1px solid #eee}section{margin-bottom:32px}#status{color:#888;font-size:11px}
.health{color:#900;background:#fdecec;border:1px solid #e99;padding:6px 10px}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{src}">'


def curve_name(run: Run, split: str, kind: str) -> str:
    """``val PGD-10, per-epoch`` for a per-epoch robust curve (the attack that produced it), ``val clean`` else."""
    from pgdat.analysis.plots import robust_curve_label

    return robust_curve_label(run.history, split) if kind == "robust" else f"{split} {kind}"


def curves_figure(runs: list[Run], *, key_sets: list[tuple[str, str]] | None = None, title: str = "") -> str:
    """Clean/robust accuracy per epoch (train/val/test) for each run, best epochs marked; returns a data URL."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, run in enumerate(runs):
        for split, style in CURVE_KEYS:
            for kind, alpha in (("clean", 0.45), ("robust", 1.0)):
                pts = evaluated_points(run.history, f"{split}_{kind}_acc")
                if pts[0]:  # only the evaluated epochs, joined (eval.every > 1 leaves gaps that NaN would break)
                    ax.plot(*pts, style, marker=".", color=f"C{i}", alpha=alpha,
                            label=plain_text(f"{run.name} {curve_name(run, split, kind)}"))
        best = run.final.get("best_epoch")
        if best:
            ax.axvline(best, color=f"C{i}", lw=1, alpha=0.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(plain_text(title) if title else "learning curves (vertical line: best epoch, chosen on validation)")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def seed_curves_figure(groups: list[SeedGroup], title: str) -> str:
    """Clean/robust accuracy per epoch of each seed group: the mean over its runs, a band of ±1 std (groups of
    several runs; epochs every run evaluated); returns a data URL."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, group in enumerate(groups):
        n = len(group.runs)
        for split, style in CURVE_KEYS:
            for kind, alpha in (("clean", 0.45), ("robust", 1.0)):
                epochs, mean, std = curve_stats(group, f"{split}_{kind}_acc")
                if not epochs:
                    continue
                label = f"{group.label} {curve_name(group.runs[0], split, kind)}" + (f", mean of {n}" if n > 1 else "")
                ax.plot(epochs, mean, style, marker=".", color=f"C{i}", alpha=alpha, label=plain_text(label))
                if n > 1:
                    ax.fill_between(epochs, [m - s for m, s in zip(mean, std, strict=True)],
                                    [m + s for m, s in zip(mean, std, strict=True)], color=f"C{i}", alpha=0.15 * alpha)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(plain_text(title))
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def seed_section(group: SeedGroup) -> str:
    """The HTML of a group of runs that differ only by seed: mean ± std curves and each seed's row."""
    seeds = ", ".join(_esc(r.config.get("train", {}).get("seed")) for r in group.runs)
    title = f"{group.label}: {len(group.runs)} seeds"
    return (f"<section><h2>{_esc(title)}, aggregated</h2><p>train.seed {seeds}; runs: "
            f"{_esc(', '.join(str(r.path) for r in group.runs))}</p>"
            + _img(seed_curves_figure([group], f"{title}: mean, band ±1 std"), f"{group.label} seed curves")
            + _table([summary_row(r) for r in group.runs]) + "</section>")


def traces_figure(run: Run, prefixes: tuple[str, ...], ylabel: str) -> str | None:
    """Any per-epoch numeric metrics starting with ``prefixes`` (CO monitor, gradient norm), or None."""
    keys = sorted({k for m in run.history for k, v in m.items() if k.startswith(prefixes) and isinstance(v, float)})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    for k in keys:
        ax.plot([m["epoch"] for m in run.history], [m.get(k, float("nan")) for m in run.history], marker="o", ms=3,
                label=plain_text(k))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def per_class_label(key: str, robust_by: object) -> str:
    """Legend name of a ``per_class_<split>_<kind>_acc`` list: ``test clean``, ``test PGD-10, per-epoch`` (the
    attack that ``robust_acc_by`` records), else the key itself."""
    parts = key.removeprefix("per_class_").removesuffix("_acc").split("_")
    if len(parts) != 2:
        return key
    split, kind = parts
    named = kind == "robust" and isinstance(robust_by, str) and robust_by
    return f"{split} {robust_by}" if named else f"{split} {kind}"


def per_class_figure(run: Run) -> str | None:
    """Bar plot of the last epoch's per-class accuracies (metrics ``per_class_*`` lists), or None."""
    last = run.history[-1] if run.history else {}
    keys = [k for k, v in last.items() if k.startswith("per_class") and isinstance(v, list)]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar([i + j * width for i in range(len(last[k]))], percent(last[k]), width,
               label=plain_text(per_class_label(k, last.get("robust_acc_by"))))
    data = run.config.get("data") if isinstance(run.config, dict) else None
    label_classes(ax, class_names(data.get("name") if isinstance(data, dict) else None, len(last[keys[0]])),
                  offset=width * (len(keys) - 1) / 2)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy (%)")
    # above the axes: inside, the legend hid the last classes' bars
    ax.legend(fontsize=7, ncol=len(keys), loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return _png(fig)


def _table(rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    # a header may break after an underscore (best_<wbr>robust), so a wide table still fits the page
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in cols)

    def cell(col: str, v: Any) -> str:
        if isinstance(v, float) and any(w in col for w in ("robust", "clean", "accuracy")):
            text = f"{100 * v:.2f}%"
        else:
            text = f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))
        return f"<td>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(c, r.get(c)) for c in cols) + "</tr>" for r in rows)
    return f'<div class="tbl"><table><tr>{head}</tr>{body}</table></div>'


def _esc(value: Any) -> str:
    """Any value read from a run file, as HTML text."""
    return html.escape("" if value is None else str(value))


def run_section(run: Run) -> str:
    """The HTML of one run; every value read from its files goes through :func:`html.escape`."""
    h = run.header
    parts = [f"<section><h2>{_esc(run.name)}</h2>",
             f"<p>{_esc(h.get('device', ''))} · pgdat {_esc(h.get('pgdat', '?'))} · torch {_esc(h.get('torch', '?'))}"
             f" · git {_esc(h.get('git_sha', '?'))} · seed {_esc(h.get('seed'))}</p>",
             _img(curves_figure([run], title=f"{run.name}: learning curves"), f"{run.name} learning curves")]
    if run.health_flags:  # the trainer's health check flagged the run: said before any of its numbers
        parts.insert(2, "<p class=\"health\"><b>HEALTH:</b> " + "<br>".join(_esc(f) for f in run.health_flags)
                     + "</p>")
    for which in ("best", "last"):
        block = run.final.get(which)
        if block:
            label = f"{which} (epoch {run.final.get('best_epoch')})" if which == "best" else which
            by = run.final.get("robust_accuracy_by") or run.final.get("attacks", "")
            parts.append(f"<h3>final evaluation, {_esc(label)}, n={_esc(run.final.get('n'))}, robust accuracy by "
                         f"{_esc(by)}</h3>")
            parts.append(_table([{"attack": k, "accuracy": v} for k, v in block["accuracy"].items()]))
    for prefixes, label in ((("co_",), "CO monitor"), (("grad_norm",), "gradient norm")):
        fig = traces_figure(run, prefixes, label)
        if fig:
            parts += [f"<h3>{label}</h3>", _img(fig, f"{run.name} {label}")]
    fig = per_class_figure(run)
    if fig:
        parts += ["<h3>per-class accuracy (last epoch)</h3>", _img(fig, f"{run.name} per-class")]
    parts.append("<h3>resolved config</h3><pre>" + html.escape(yaml.safe_dump(run.config, sort_keys=False)) + "</pre>")
    return "\n".join(parts) + "</section>"


def claims_section(claims: list[str]) -> str:
    """The claim lines of a ``pgdat repro`` summary (verdicts first), escaped, as a list."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in claims)
    return f"<section><h2>claims</h2><ul>{items}</ul></section>"


def render_report(runs: list[Run], title: str = "pgdat report", claims: list[str] | None = None) -> str:
    groups = seed_groups(runs)  # runs that differ only by train.seed: one row, mean ± std (n)
    rows = [group_row(g) for g in groups]
    body = [f"<h1>{html.escape(title)}</h1>", *([claims_section(claims)] if claims else []), "<h2>comparison</h2>",
            _table(text_rows(rows, percent=True))]
    if len(runs) > 1:
        body.append(_img(curves_figure(runs, title="all runs") if len(groups) == len(runs) else
                         seed_curves_figure(groups, "all runs, seeds aggregated (mean, band ±1 std)"),
                         "overlaid learning curves"))
    body += [seed_section(g) for g in groups if len(g.runs) > 1]
    body += [run_section(r) for r in runs]
    body.append('<p id="status">loading</p>')
    data = html.escape(json.dumps(json_rows(rows)))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style>{STATUS_JS}</head><body data-rows=\"{data}\">" + "\n".join(body) + "</body></html>")


def write_report(run_dirs: list[str | Path], out: str | Path, title: str = "pgdat report",
                 claims: list[str] | None = None) -> Path:
    """Render the runs into one self-contained HTML file (written atomically); ``claims``: lines shown first."""
    text = render_report([load_run(p) for p in run_dirs], title, claims)
    return atomic_write_bytes(Path(out), lambda f: f.write(text.encode()))


__all__ = ["format_table", "render_report", "write_report"]
