"""Hostile run files: text from metrics.jsonl, final.json and config.yaml is data (HTML-escaped, never mathtext), and a
malformed file ends `pgdat report` / `pgdat compare` with one line naming the file and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pgdat.cli.main import main
from pgdat.config import config_to_dict, load_config
from pgdat.report import render_report
from pgdat.report.runs import load_run

XSS = "<script>alert(1)</script>"
MATH = r"$\foo$"


def write_run(root: Path, name: str = "run", text: str = "ok") -> Path:
    """A hand-written run directory (no training): ``text`` in every string field the report shows."""
    run = root / name
    run.mkdir(parents=True)
    config = config_to_dict(load_config(None, [f"name={name}"]))
    config["method"]["name"] = f"pgd_at{text}"
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    header = {"type": "header", "device": text, "pgdat": text, "torch": text, "git_sha": text, "seed": text,
              "name": text}
    rows = [{"epoch": e, "lr": 0.1, "train_clean_acc": 0.5 + 0.1 * e, "train_robust_acc": 0.2 + 0.1 * e,
             "test_clean_acc": 0.5, "test_robust_acc": 0.3, "time_train": 1.0, "time_eval": 0.5,
             f"co_{text}": 0.1 * e, f"grad_norm_{text}": 1.0 + e, "per_class_test_clean_acc": [0.5, None, 0.7],
             "best_epoch": 1} for e in (1, 2)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [header, *rows]) + "\n")
    block = {"accuracy": {"clean": 0.5, f"pgd-20{text}": 0.3}, "robust_accuracy": 0.3}
    final = {"n": text, "eps": 0.3, "norm": text, "attacks": text, "best_epoch": 1, "selected_by": text,
             "best": block, "last": block}
    (run / "final.json").write_text(json.dumps(final))
    return run


def test_script_in_every_field_is_escaped(tmp_path):
    run = write_run(tmp_path, "x<script>alert(1)</script>", XSS)
    page = render_report([load_run(run)], title=XSS)
    assert page.count("<script") == 1  # only the page's own status script
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 12  # title, name, header x5, n, attack, config
    for field in ("pgdat", "torch", "git", "seed"):
        assert f"{field} &lt;script&gt;alert(1)" in page
    assert "n=&lt;script&gt;" in page


def test_mathtext_in_names_and_keys_is_drawn_as_text(tmp_path):
    from pgdat.analysis.plots import plot_learning_curves, plot_per_class, plot_series

    run = write_run(tmp_path, MATH, MATH)
    page = render_report([load_run(run), load_run(write_run(tmp_path, "other"))], title=MATH)
    assert page.count("data:image/png;base64,") >= 5
    history = load_run(run).history
    assert plot_learning_curves(history, tmp_path / "c.png", best_epoch=1, title=MATH).stat().st_size > 0
    assert plot_series(history, [f"co_{MATH}"], tmp_path / "s.png", ylabel=MATH, title=MATH).stat().st_size > 0
    assert plot_per_class(history[-1], tmp_path / "p.png", title=f"{MATH}, epoch 2").stat().st_size > 0


def test_mathtext_in_analysis_plots_is_drawn_as_text(tmp_path):
    from pgdat.analysis.criticality import plot_heatmap
    from pgdat.analysis.overfitting import plot_robust_overfitting

    run = write_run(tmp_path, "r", MATH)
    history = [{**m, "test_robust_acc": 0.3 + 0.01 * m["epoch"]} for m in load_run(run).history]
    assert plot_robust_overfitting({MATH: history}, tmp_path / "o.png").stat().st_size > 0
    summary = {"layers": [{"layer": MATH, "stage": MATH, "criticality": 40.0}], "mean": 40.0}
    assert plot_heatmap({MATH: summary}, tmp_path / "h.png", title=MATH).stat().st_size > 0


def _mutate(run: Path, file: str, edit) -> None:  # noqa: ANN001
    path = run / file
    path.write_bytes(edit(path.read_bytes()))


def _json_edit(file_key: str, value):  # noqa: ANN001, ANN202
    def edit(data: bytes) -> bytes:
        lines = data.decode().splitlines()
        if file_key.startswith("row."):
            row = json.loads(lines[1])
            row[file_key[4:]] = value
            lines[1] = json.dumps(row)
            return "\n".join(lines).encode()
        obj = json.loads(data)
        obj[file_key] = value
        return json.dumps(obj).encode()
    return edit


CASES = [
    ("metrics.jsonl", lambda b: b + b"{not json\n", r"metrics\.jsonl line 4: not valid JSON"),
    ("metrics.jsonl", lambda b: b + b"[1, 2]\n", r"metrics\.jsonl line 4: field '\(line\)' must be a JSON object"),
    ("metrics.jsonl", lambda b: b + b"[" * 100_000 + b"]" * 100_000 + b"\n", r"metrics\.jsonl line 4: JSON nested"),
    ("metrics.jsonl", _json_edit("row.epoch", "one"), r"metrics\.jsonl line 2: field 'epoch' must be an integer"),
    ("metrics.jsonl", _json_edit("row.test_robust_acc", "high"), r"line 2: field 'test_robust_acc' must be a number"),
    ("metrics.jsonl", _json_edit("row.time_train", [1]), r"line 2: field 'time_train' must be a number"),
    ("metrics.jsonl", _json_edit("row.per_class_test_clean_acc", "x"), r"field 'per_class_test_clean_acc' must be"),
    ("metrics.jsonl", lambda b: b"\xff\xfe" + b, r"metrics\.jsonl is not a UTF-8 text file"),
    ("final.json", lambda b: b[:-5], r"final\.json: not valid JSON"),
    ("final.json", lambda b: b"[]", r"final\.json: field '\(file\)' must be a JSON object"),
    ("final.json", _json_edit("best", {"accuracy": [0.1], "robust_accuracy": 0.1}), r"field 'best\.accuracy' must"),
    ("final.json", _json_edit("last", {"accuracy": {}, "robust_accuracy": "x"}), r"'last\.robust_accuracy' must be"),
    ("final.json", _json_edit("best_epoch", "first"), r"final\.json: field 'best_epoch' must be an integer"),
    ("final.json", lambda b: b[:-1] + b', "n2": ' + b"9" * 5000 + b"}", r"final\.json: not valid JSON"),
    ("config.yaml", lambda b: b"- 1\n- 2\n", r"config\.yaml: field '\(file\)' must be a mapping"),
    ("config.yaml", lambda b: b"method: [\n", r"cannot parse run config .*config\.yaml as YAML"),
    ("config.yaml", lambda b: b.replace(b"method:\n  name:", b"method:\n  nam:"), r"field 'method\.name'"),
    ("config.yaml", lambda b: b.replace(b"  eps: 0.3", b"  eps: big"), r"config\.yaml: field 'attack\.eps' must be"),
    ("config.yaml", lambda b: b.replace(b"  steps: 40", b"  steps: ten"), r"config\.yaml: field 'attack\.steps'"),
    ("config.yaml", lambda b: b"a: &a [1, 2]\nb: *a\n" + b, r"config\.yaml: YAML alias '\*a'"),
]


@pytest.mark.parametrize("file,edit,message", CASES)
def test_malformed_run_file_is_a_one_line_error(tmp_path, capsys, file, edit, message):
    run = write_run(tmp_path)
    _mutate(run, file, edit)
    for argv in (["compare", str(run)], ["report", str(run), "-o", str(tmp_path / "r.html")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"pgdat {argv[0]}: error: ") and "\n" not in err, err
        assert str(run / file) in err
        assert re.search(message, err), err
    assert not (tmp_path / "r.html").exists()


def test_intact_hand_written_run_reports(tmp_path, capsys):
    run = write_run(tmp_path)
    assert main(["compare", str(run), "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["best_robust"] == 0.3 and row["epochs"] == 2 and row["wall_s"] == 3.0
