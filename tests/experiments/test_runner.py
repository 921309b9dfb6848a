"""``pgdat repro NAME --seeds N``: the claims summary (console, md, json, HTML) over seeds, on a fake experiment
(no training) and, in the slow tier, on the criticality experiment's tiny preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgdat.errors import PgdatError
from pgdat.experiments import EXPERIMENTS, Experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.runner import health_flags, run_experiment
from pgdat.report.html import claims_section

CLAIMS = (Claim("up", "a beats b", "a", ">", "b", "Someone 2024, Fig. 2", "ImageNet", 1.0, "%"),
          Claim("<b>down</b>", "b beats a", "b", ">", "a", "Someone 2024, Fig. 3", "ImageNet", 1.0, "%"),
          Claim("only-paper", "c beats b", "c", ">", "b", "Someone 2024, Tab. 1", "ImageNet"))


def fake_analyse(out: Path, runs: list, *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    assert runs == []  # the fake plan trains nothing
    out.mkdir(parents=True, exist_ok=True)
    (out / "ran").write_text(str(seed))
    return [{"name": "a", "value": 60.0 + seed}, {"name": "b", "value": 50.0 + 2 * seed}]


@pytest.fixture
def fake():
    exp = Experiment("fake", lambda preset, seed: [], fake_analyse, CLAIMS,
                     lambda rows: {r["name"]: r["value"] for r in rows}, {"cpu": 3, "paper": 1}, "Fake experiment")
    EXPERIMENTS["fake"] = exp  # (Registry.get takes no default, so not monkeypatch.setitem)
    yield exp
    del EXPERIMENTS["fake"]


def test_summary_starts_with_one_line_per_claim(tmp_path, fake):
    res = run_experiment("fake", "cpu", tmp_path)  # the preset's default: 3 seeds
    assert res.seeds == [0, 1, 2]
    assert [(tmp_path / f"seed{s}" / "ran").read_text() for s in res.seeds] == ["0", "1", "2"]
    assert [r.verdict for r in res.results] == ["shown", "not shown", "not measured"]  # a - b = 10, 9, 8
    md = (tmp_path / "summary.md").read_text().splitlines()
    assert md[2].startswith("- [shown] up: a beats b | a 61.00 ± 2.48% > b 52.00 ± 4.97% | difference 9.00 ± 2.48%")
    assert md[3].startswith("- [not shown] <b>down</b>") and "no value for c" in md[4]
    assert "seeds: 3 (offsets 0, 1, 2" in md[5]
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["n_seeds"] == 3 and [c["verdict"] for c in data["claims"]] == ["shown", "not shown", "not measured"]
    assert data["claims"][0]["diff"]["mean"] == pytest.approx(9.0) and data["metrics_per_seed"][2] == {"a": 62.0,
                                                                                                      "b": 54.0}
    assert [r["seed"] for r in data["rows"]] == [0, 0, 1, 1, 2, 2]


def test_single_seed_says_so_and_bad_inputs_fail(tmp_path, fake):
    res = run_experiment("fake", "paper", tmp_path)
    assert res.seeds == [0] and "single seed" in res.lines()[0] and "resolution" in res.lines()[-1]
    with pytest.raises(PgdatError, match="--seeds must be"):
        run_experiment("fake", "cpu", tmp_path, seeds=0)
    with pytest.raises(PgdatError, match="--preset for fake must be one of cpu, paper"):
        run_experiment("fake", "gpu", tmp_path)


def test_health_flags_reach_the_summary(tmp_path):
    run = tmp_path / "seed0" / "runs" / "x"
    run.mkdir(parents=True)
    (run / "final.json").write_text(json.dumps({"health": {"flags": ["training loss diverged: epoch 3"]}}))
    (tmp_path / "seed0" / "ok").mkdir()
    (tmp_path / "seed0" / "ok" / "final.json").write_text(json.dumps({"health": {"flags": []}}))
    old = tmp_path / "seed0" / "old"  # final.json from before the health check: the epochs' flags are read
    old.mkdir()
    (old / "final.json").write_text("{}")
    (old / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in [
        {"type": "header"}, {"health_flags": []}, {"health_flags": ["clean val accuracy stayed at chance: 10%"]},
        {"health_flags": ["clean val accuracy stayed at chance: 11%"]}]) + "\n")
    assert health_flags(tmp_path) == [{"run": "seed0/old", "flags": ["clean val accuracy stayed at chance: 11%"]},
                                      {"run": "seed0/runs/x", "flags": ["training loss diverged: epoch 3"]}]


def test_claims_section_is_escaped():
    html = claims_section(["[shown] <script>alert(1)</script> & more"])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html


@pytest.mark.slow
def test_criticality_over_two_seeds_trains_distinct_seeds(tmp_path, monkeypatch, capsys):
    from pgdat.cli.main import main
    from pgdat.experiments import criticality as exp

    tiny = ["data.n_train=128", "data.val_size=32", "train.epochs=1", "attack.steps=1", "attack.eps_warmup_epochs=0",
            "eval.attack=pgd-1", "eval.n_test=32", "eval.final_attacks=clean", "eval.n_final=32",
            "train.progress=false"]
    monkeypatch.setitem(exp.PRESETS, "cpu", {**exp.PRESETS["cpu"], "base": tiny, "n": 48, "trials": 1,
                                             "adv_steps": 2, "runs": [("standard", 0.0), ("pgd_at", 0.1)]})
    assert main(["repro", "criticality", "--preset", "cpu", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("[") >= 3 and "seeds: 2 (offsets 0, 1" in out
    seeds = [json.loads((tmp_path / f"seed{s}" / "runs" / "standard" / "metrics.jsonl").read_text().splitlines()[0])
             ["seed"] for s in (0, 1)]
    assert seeds == [0, 1]
    report = (tmp_path / "report.html").read_text()
    assert "<h2>claims</h2>" in report and "at-more-critical" in report


def test_per_seed_table_keeps_small_values_readable():
    """A per-seed NTK velocity of 9.5e-06 reads as such, not 0.00 (the table said 0.00 for every last epoch)."""
    from pgdat.experiments.runner import ReproResult, _metrics_table

    result = ReproResult(EXPERIMENTS.get("ntk"), "cpu", [0, 1], [], [{"v": 9.51e-06, "acc": 60.444},
                                                                       {"v": 0.0114, "acc": 58.0}], [], [], 1.0)
    assert _metrics_table(result)[2:] == ["| v | 0.00000951 | 0.0114 |", "| acc | 60.44 | 58.00 |"]


def test_internal_trainings_do_not_break_the_report(tmp_path, fake):
    """The induced experiment keeps its students' checkpoints and final.json but no config.yaml/metrics.jsonl; the
    multi-seed summary's report failed on them ("not a pgdat run directory") after every seed had finished."""

    def with_student(out: Path, runs: list, *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
        student = out / "students" / "student_epoch_5"
        student.mkdir(parents=True)
        (student / "final.json").write_text(json.dumps({"health": {"flags": []}}))
        return fake_analyse(out, runs, preset=preset, seed=seed)

    import dataclasses

    EXPERIMENTS["fake"] = dataclasses.replace(fake, analyse=with_student)  # the fixture deletes it afterwards
    res = run_experiment("fake", "paper", tmp_path)
    assert res.results[0].verdict == "shown" and (tmp_path / "summary.md").is_file()
    assert health_flags(tmp_path) == []  # the students' health is still read
