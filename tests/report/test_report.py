"""Reports: comparison table formats, a self-contained page, and the page rendered in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import pytest

from pgdat.cli.main import main
from pgdat.report import render_report
from pgdat.report.runs import load_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real (tiny) runs of the embedded default: PGD-AT and standard, with the gradient-norm monitor."""
    from tests.conftest import TINY

    root = tmp_path_factory.mktemp("runs")
    for method in ("pgd_at", "standard"):
        sets = TINY + ["train.epochs=2", f"method.name={method}", "train.callbacks=[{name: grad_norm}]"]
        assert main(["train", *[a for s in sets for a in ("--set", s)], "--out", str(root / method)]) == 0
    return [root / "pgd_at", root / "standard"]


def test_compare_formats(two_runs, capsys):
    assert main(["compare", *map(str, two_runs), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == ["pgd_at", "standard"]
    assert rows[0]["passes_per_example"] == 3 and rows[1]["passes_per_example"] == 1  # 2 attack steps + 1
    assert all(0 <= r["best_robust"] <= r["best_clean"] <= 1 for r in rows)
    assert main(["compare", *map(str, two_runs), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("run,method,eps")
    assert main(["compare", *map(str, two_runs)]) == 0
    assert "| pgd_at |" in capsys.readouterr().out
    assert main(["compare", str(two_runs[0]), "--format", "xml"]) == 2


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_self_contained(two_runs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", *map(str, two_runs), "-o", str(out)]) == 0
    page = out.read_text()
    assert "http://" not in page and "https://" not in page  # no network, no CDN
    imgs = _images(page)
    assert len(imgs) >= 5  # overlay + per-run curves + gradient-norm traces
    import matplotlib.image as mpimg

    for png in imgs:
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.std() > 0.02, "a blank plot"
    for word in ("comparison", "final evaluation", "resolved config", "gradient norm", "pgd_at", "standard"):
        assert word in page
    assert render_report([load_run(two_runs[0])]).count("<section>") == 1


def test_report_in_headless_chromium(two_runs, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs the Debian package; install failed or no apt)")
    out = tmp_path / "r.html"
    assert main(["report", *map(str, two_runs), "-o", str(out)]) == 0
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([CHROMIUM, *FLAGS, *profile, "--window-size=1200,2000", "--dump-dom", out.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    status = re.search(r'<p id="status" data-images="(\d+)" data-broken="(\d+)" data-errors="(\d+)" '
                       r'data-overflow="(\d)">(\w+)', dom)
    assert status, "the page's load handler did not run"
    images, broken, errors, overflow, word = status.groups()
    assert int(images) >= 5 and broken == "0" and errors == "0" and word == "ok"
    assert overflow == "0", "the page is wider than a 1200 px window (a table or image overflows)"
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, *profile, "--window-size=1200,2000", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05, "the screenshot is blank"


def test_curves_join_only_the_evaluated_epochs():
    from pgdat.analysis.plots import evaluated_points

    # eval.every=5 over 10 epochs: values at epochs 5 and 10 only; the curve is those two points, joined
    history = [{"epoch": e, "val_robust_acc": {5: 0.5, 10: 0.625}.get(e)} for e in range(1, 11)]
    assert evaluated_points(history, "val_robust_acc") == ([5, 10], [50.0, 62.5])
    assert evaluated_points(history, "test_robust_acc") == ([], [])


def test_cost_column_reads_the_method_facts():
    """Every method gets its declared passes, from its attack and options; a method or option this version does
    not know gives None rather than a wrong number."""
    from pgdat.report import run_passes

    def cfg(name: str, steps: int = 10, restarts: int = 1, **params) -> dict:
        return {"method": {"name": name, "params": params}, "attack": {"eps": 0.1, "steps": steps,
                                                                        "restarts": restarts}}

    assert run_passes(cfg("pgd_at")) == 11 and run_passes(cfg("trades")) == 12
    assert run_passes(cfg("pgd_at", steps=7, restarts=2)) == 15
    assert run_passes(cfg("rs_fgsm")) == 2 and run_passes(cfg("grad_align")) == 4  # were None before the facts
    assert run_passes(cfg("free_at", m=4)) == 4 and run_passes(cfg("awp", base="trades")) == 14
    assert run_passes(cfg("no_such_method")) is None and run_passes(cfg("pgd_at", beta=6)) is None


def test_health_flags_reach_compare_and_report(two_runs, tmp_path, capsys):
    """A run the trainer's health check flagged says so in the comparison table and at the top of its section
    (escaped: the flag text comes from a run file); a healthy run reads "ok"; a run without final.json yet takes
    the flags from its epochs in metrics.jsonl."""
    flagged = tmp_path / "flagged"
    shutil.copytree(two_runs[0], flagged)
    final = json.loads((flagged / "final.json").read_text())
    final["health"] = {"flags": ["training loss diverged: epoch 2 loss <script>1e9</script>"], "chance": {}}
    (flagged / "final.json").write_text(json.dumps(final))
    assert main(["compare", str(flagged), str(two_runs[1]), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["health"].startswith("training loss diverged") and rows[1]["health"] == "ok"
    page = render_report([load_run(flagged), load_run(two_runs[1])])
    assert page.count('<p class="health">') == 1 and "&lt;script&gt;1e9" in page and "<script>1e9" not in page

    (flagged / "final.json").unlink()  # mid-run: the epochs' flags
    lines = (flagged / "metrics.jsonl").read_text().splitlines()
    row = json.loads(lines[-1]) | {"health_flags": ["clean train accuracy stayed at chance: at most 10.0%"]}
    (flagged / "metrics.jsonl").write_text("\n".join(lines[:-1] + [json.dumps(row)]) + "\n")
    assert load_run(flagged).health_flags == ["clean train accuracy stayed at chance: at most 10.0%"]
