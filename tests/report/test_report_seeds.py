"""Seeds aggregated in reports: runs that differ only by train.seed are one row ``mean ± std (n)`` and one mean curve
with a std band; a sweep directory stands for its runs; single runs are reported as before."""

from __future__ import annotations

import html
import json
import re
import statistics
from pathlib import Path

import pytest
import yaml

from pgdat.cli.main import main
from pgdat.errors import PgdatError
from pgdat.report import load_run, render_report, summary_row
from pgdat.report.seeds import (
    SeedGroup,
    curve_stats,
    expand_runs,
    group_row,
    seed_groups,
    seed_stat,
    table_rows,
    text_rows,
)

ROBUST = {0: [0.30, 0.40], 1: [0.34, 0.45], 2: [0.29, 0.47]}  # seed -> per-epoch test robust accuracy


def write_run(d: Path, seed: int, eps: float = 0.3, robust: list[float] | None = None) -> Path:
    """A run directory with the files a training writes that reports read: 2 epochs, final.json."""
    robust = robust or ROBUST[seed]
    d.mkdir(parents=True)
    cfg = {"name": "default", "method": {"name": "pgd_at"}, "attack": {"eps": eps, "steps": 2, "restarts": 1},
           "train": {"seed": seed, "epochs": 2, "progress": seed == 1}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [{"type": "header", "seed": seed}] + [
        {"epoch": e + 1, "test_clean_acc": 0.8 + 0.01 * seed, "test_robust_acc": r, "time_train": 1.0 + seed,
         "time_eval": 0.5} for e, r in enumerate(robust)]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    block = {"accuracy": {"clean": 0.8 + 0.01 * seed, "PGD-5": robust[-1]}, "robust_accuracy": robust[-1]}
    final = {"best_epoch": 2, "best": block, "last": block, "robust_accuracy_by": "PGD-5", "n": 100, "epochs": 2}
    (d / "final.json").write_text(json.dumps(final))
    return d


@pytest.fixture
def sweep_dir(tmp_path) -> Path:
    """A sweep directory: point eps0.3 with seeds 0-2, point eps0.1 with seed 0 only started."""
    out = tmp_path / "sw"
    for s in ROBUST:
        write_run(out / "eps0.3" / f"seed{s}", s)
    write_run(out / "eps0.1" / "seed0", 0, eps=0.1)
    dirs = [f"eps0.3/seed{s}" for s in ROBUST] + ["eps0.1/seed0", "eps0.1/seed1"]  # the last never started
    (out / "sweep.json").write_text(json.dumps({"runs": [{"dir": d} for d in dirs]}))
    return out


def test_runs_differing_only_by_seed_form_one_group(sweep_dir):
    runs = [load_run(p) for p in expand_runs([sweep_dir])]
    groups = seed_groups(runs)
    assert [len(g.runs) for g in groups] == [3, 1]  # train.progress differs too: it does not change the experiment
    assert groups[0].label == "eps0.3" and groups[1].label == "seed0"


def test_group_row_is_mean_std_n_of_the_seeds(sweep_dir):
    runs = [load_run(sweep_dir / "eps0.3" / f"seed{s}") for s in ROBUST]
    row = group_row(SeedGroup(runs))
    last = [ROBUST[s][-1] for s in ROBUST]
    assert row["run"] == "eps0.3" and row["seeds"] == 3 and row["train_seeds"] == "0,1,2"
    assert row["best_robust"].mean == pytest.approx(statistics.mean(last), abs=1e-12)
    assert row["best_robust"].std == pytest.approx(statistics.stdev(last), abs=1e-12)
    assert row["wall_s"].mean == pytest.approx(statistics.mean([2 * (1.5 + s) for s in ROBUST]))
    assert row["method"] == "pgd_at" and row["final_attacks"] == "PGD-5" and row["epochs"] == 2
    md, pct = text_rows([row], percent=False)[0], text_rows([row], percent=True)[0]
    mean, sd = statistics.mean(last), statistics.stdev(last)
    assert md["best_robust"] == f"{mean:.4f} ± {sd:.4f} (3)"
    assert pct["best_robust"] == f"{100 * mean:.2f}% ± {100 * sd:.2f}% (3)"
    assert row["health"] == "ok"


def test_group_row_names_the_flagged_seeds(sweep_dir):
    """One flagged seed of three: the group's health cell says which, not just one of the values."""
    final = sweep_dir / "eps0.3" / "seed1" / "final.json"
    final.write_text(json.dumps(json.loads(final.read_text()) | {"health": {"flags": ["at chance"], "chance": {}}}))
    row = group_row(SeedGroup([load_run(sweep_dir / "eps0.3" / f"seed{s}") for s in ROBUST]))
    assert row["health"] == "1 of 3 flagged (train.seed 1)"


def test_a_single_run_row_is_unchanged(sweep_dir):
    run = load_run(sweep_dir / "eps0.1" / "seed0")
    assert table_rows([run]) == [summary_row(run)] and text_rows([summary_row(run)], True) == [summary_row(run)]


def test_curve_stats_mean_and_std_per_epoch(sweep_dir):
    group = SeedGroup([load_run(sweep_dir / "eps0.3" / f"seed{s}") for s in ROBUST])
    epochs, mean, std = curve_stats(group, "test_robust_acc")
    assert epochs == [1, 2]
    for i in range(2):
        values = [100 * ROBUST[s][i] for s in ROBUST]
        assert mean[i] == pytest.approx(statistics.mean(values)) and std[i] == pytest.approx(statistics.stdev(values))
    assert seed_stat([0.5]).std is None


def test_compare_on_a_sweep_dir_shows_mean_std_n(sweep_dir, capsys):
    assert main(["compare", str(sweep_dir)]) == 0
    out = capsys.readouterr().out
    last = [ROBUST[s][-1] for s in ROBUST]
    assert "| eps0.3 | 3 | 0,1,2 | pgd_at | 0.3000 |" in out
    assert f"{statistics.mean(last):.4f} ± {statistics.stdev(last):.4f} (3)" in out
    assert main(["compare", str(sweep_dir), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["best_robust"]["values"] == last and rows[1]["best_robust"] == ROBUST[0][-1]


def test_report_on_a_sweep_dir_aggregates_seeds(sweep_dir, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(sweep_dir), "-o", str(out)]) == 0
    page = out.read_text()
    assert "± " in page and "eps0.3: 3 seeds, aggregated" in page
    rows = json.loads(html.unescape(re.search(r'data-rows="([^"]*)"', page).group(1)))
    assert rows[0]["seeds"] == 3 and rows[0]["best_robust"]["n"] == 3
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 6  # overlay, group curves, 4 runs' curves


def test_single_runs_report_as_before(tmp_path):
    runs = [load_run(write_run(tmp_path / "a", 0)), load_run(write_run(tmp_path / "b", 0, eps=0.1))]
    page = render_report(runs)
    rows = json.loads(html.unescape(re.search(r'data-rows="([^"]*)"', page).group(1)))
    assert rows == [summary_row(r) for r in runs] and "±" not in page and "aggregated" not in page


def test_a_broken_sweep_plan_fails_naming_it(tmp_path):
    (tmp_path / "sweep.json").write_text("{\"runs\": 3}")
    with pytest.raises(PgdatError, match="is not a pgdat sweep plan"):
        expand_runs([tmp_path])
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [{"dir": "p/seed0"}]}))
    with pytest.raises(PgdatError, match="has no run with metrics yet"):
        expand_runs([tmp_path])
