"""``pgdat sweep``: a sweep killed mid-way continues without redoing finished runs, its summary equals the statistics
computed by hand from each run's final.json, and a changed plan, a foreign run or a second sweep is refused."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import t

from pgdat.cli.main import main
from pgdat.errors import PgdatError
from pgdat.experiments.sweep import parse_grid, parse_seeds, plan_sweep, point_names, run_state
from pgdat.killhook import KILL_ENV
from pgdat.rundir import RunLock
from tests.conftest import TINY, cli_sets, snapshot

# 192 training images in batches of 64: 3 optimizer steps per epoch, fp32 on CPU
SMALL = [o for o in TINY if not o.startswith(("train.epochs", "data.n_train"))] + [
    "data.n_train=192", "train.precision=fp32"]
# train.epochs 1 and 2: the 1-epoch runs finish before step 4; the first 2-epoch run is killed after step 4
GRID = ["--grid", "train.epochs=1,2", "--seeds", "0,1"]
FINISHED = ["epochs1/seed0", "epochs1/seed1"]
UNFINISHED = ["epochs2/seed0", "epochs2/seed1"]


def sweep_args(out: Path, *extra: str) -> list[str]:
    return ["sweep", *GRID, *cli_sets(SMALL), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory):
    """A sweep SIGKILLed in its third run (epoch 2, step 4), its files then, and the same command rerun with
    ``--workers 2`` (the rest in two ``pgdat train`` children)."""
    out = tmp_path_factory.mktemp("sweep") / "sw"
    env = {**os.environ, KILL_ENV: "4", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "pgdat", *sweep_args(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    before = {d: snapshot(out / d) for d in FINISHED}
    killed_rows = (out / UNFINISHED[0] / "metrics.jsonl").read_text().splitlines()
    started = sorted(str(p.parent.relative_to(out)) for p in out.glob("*/seed*/config.yaml"))
    rc = main(sweep_args(out, "--workers", "2"))
    return out, before, killed_rows, started, rc


def test_killed_sweep_continues_without_redoing_finished_runs(killed_sweep):
    out, before, killed_rows, started, rc = killed_sweep
    assert started == [*FINISHED, UNFINISHED[0]]  # killed in the third run; the fourth never started
    assert len(killed_rows) == 2  # header + epoch 1: last.pt holds epoch 1
    assert rc == 0
    for d in FINISHED:
        assert snapshot(out / d) == before[d]  # not retrained: every file's bytes and mtime unchanged
    for d in UNFINISHED:
        final = json.loads((out / d / "final.json").read_text())
        assert final["epochs"] == 2
    rows = (out / UNFINISHED[0] / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[0])["resumed_at_epoch"] == 1  # resumed from last.pt, not started over
    assert rows[1] == killed_rows[1] and [json.loads(r)["epoch"] for r in rows[1:]] == [1, 2]
    assert (out / "logs" / "epochs2_seed0.log").is_file() and (out / "logs" / "epochs2_seed1.log").is_file()


def _by_hand(values: list[float]) -> tuple[float, float, float]:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, sd, t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))


def test_summary_equals_statistics_by_hand_from_final_json(killed_sweep):
    out = killed_sweep[0]
    summary = json.loads((out / "summary.json").read_text())
    assert [p["point"] for p in summary["points"]] == ["epochs1", "epochs2"]
    for point in summary["points"]:
        finals = [json.loads((out / point["point"] / f"seed{s}" / "final.json").read_text()) for s in (0, 1)]
        assert point["finished_seeds"] == [0, 1] and point["train_seeds"] == [0, 1]
        assert point["robust_accuracy_by"] == [finals[0]["robust_accuracy_by"]]
        for which in ("best", "last"):
            for kind, get in (("robust", lambda b: b["robust_accuracy"]), ("clean", lambda b: b["accuracy"]["clean"])):
                mean, sd, half = _by_hand([get(f[which]) for f in finals])
                stats = point[f"{which}_{kind}"]
                assert stats["n"] == 2
                assert stats["mean"] == pytest.approx(mean, abs=1e-12)
                assert stats["std"] == pytest.approx(sd, abs=1e-12)
                assert stats["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-12)
    md = (out / "summary.md").read_text()
    assert "| epochs1 | 1 | 2/2 |" in md and "±" in md


def test_rerun_of_a_finished_sweep_changes_no_run(killed_sweep, capsys):
    out = killed_sweep[0]
    runs = {d: snapshot(out / d) for d in FINISHED + UNFINISHED}
    assert main(sweep_args(out)) == 0
    assert "0 trained, 4 already finished" in capsys.readouterr().out
    assert {d: snapshot(out / d) for d in runs} == runs


def test_another_grid_into_the_same_dir_is_refused_and_changes_nothing(killed_sweep, capsys):
    out = killed_sweep[0]
    before = snapshot(out)
    assert main(["sweep", "--grid", "train.epochs=1,3", "--seeds", "0,1", *cli_sets(SMALL), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds another sweep" in err and "--replan" in err
    assert snapshot(out) == before


def test_run_dir_with_another_config_is_refused_naming_it(killed_sweep, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(killed_sweep[0], out)
    before = snapshot(out)
    assert main([*sweep_args(out), "--set", "attack.eps=0.2", "--replan"]) == 2
    err = capsys.readouterr().err
    assert f"{out / FINISHED[0]} holds a run with another config" in err and "attack.eps" in err
    assert snapshot(out) == before  # refused before the plan was replaced or anything trained


def test_replan_keeps_the_old_plan_and_reuses_finished_runs(killed_sweep, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(killed_sweep[0], out)
    runs = {d: snapshot(out / d) for d in FINISHED + UNFINISHED}
    old_plan = (out / "sweep.json").read_bytes()
    args = ["sweep", "--grid", "train.epochs=1", "--seeds", "0,1", *cli_sets(SMALL), "--out", str(out), "--replan"]
    assert main(args) == 0
    assert "0 trained, 2 already finished" in capsys.readouterr().out
    assert (out / "sweep.replaced-1.json").read_bytes() == old_plan
    assert [p["point"] for p in json.loads((out / "summary.json").read_text())["points"]] == ["epochs1"]
    assert {d: snapshot(out / d) for d in runs} == runs  # the dropped point's runs stay on disk, untouched


def test_a_run_that_fails_does_not_stop_the_others_and_leaves_the_summary(killed_sweep, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(killed_sweep[0], out)
    (out / UNFINISHED[1] / "final.json").unlink()  # now a run to resume, whose directory another process holds
    with RunLock(out / UNFINISHED[1]).acquire(create=False):
        assert main(sweep_args(out)) == 1
    text = capsys.readouterr().out
    assert f"failed: {out / UNFINISHED[1]}: run directory {out / UNFINISHED[1]} is in use" in text
    points = json.loads((out / "summary.json").read_text())["points"]
    assert points[1]["finished_seeds"] == [0] and points[1]["best_robust"]["n"] == 1
    assert points[1]["best_robust"]["std"] is None and "(1 seed)" in (out / "summary.md").read_text()


def test_a_second_sweep_on_a_locked_dir_is_refused(tmp_path, capsys):
    out = tmp_path / "sw"
    with RunLock(out).acquire(create=True):
        assert main(["sweep", *cli_sets(SMALL), "--out", str(out)]) == 2
    assert f"cannot run the sweep in {out}: run directory {out} is in use" in capsys.readouterr().err
    assert not (out / "sweep.json").exists()


def test_plan_names_points_and_seeds_as_offsets(tmp_path):
    plan = plan_sweep(tmp_path / "sw", None, [*SMALL, "train.seed=10"], parse_grid(["attack.eps=4/255,8/255"]),
                      parse_seeds("0,2"))
    assert [r.rel_dir for r in plan.runs] == ["eps4-255/seed0", "eps4-255/seed2", "eps8-255/seed0",
                                              "eps8-255/seed2"]
    assert [r.config.train.seed for r in plan.runs] == [10, 12, 10, 12]
    assert [r.config.attack.eps for r in plan.runs[::2]] == [4 / 255, 8 / 255]  # read like --set values
    assert run_state(plan.runs[0], tmp_path / "nothing") == "fresh"
    assert not (tmp_path / "sw").exists()  # planning writes nothing


def test_seeds_count_or_list_and_point_names():
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("5,") == [5]
    assert point_names([{"attack.eps": "0.1", "eval.eps": "0.1"}]) == ["attack-eps0.1_eval-eps0.1"]
    assert point_names([{"a.x": "1/2"}, {"a.x": "1-2"}]) == ["point0", "point1"]  # would collide
    assert point_names([{}]) == ["base"]
    with pytest.raises(PgdatError, match="distinct"):
        parse_seeds("1,1")


def test_workers_get_gpus_round_robin_and_children_the_planned_overrides(tmp_path, monkeypatch):
    import torch

    from pgdat.experiments.sweep_run import child_command, gpu_slots

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_slots(3, "auto") == ["0", "1", "0"] and gpu_slots(2, "cuda:1") == [None, None]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert gpu_slots(2, "cuda") == ["4", "6"]
    plan = plan_sweep(tmp_path / "sw", None, ["train.epochs=1"], parse_grid(["attack.eps=0.1"]), [1])
    run = plan.runs[0]
    assert child_command(plan, run, resume=False)[2:] == [
        "pgdat", "train", "--config", "default", "--set", "train.epochs=1", "--set", "attack.eps=0.1", "--set",
        "train.seed=1", "--out", str(tmp_path / "sw" / "eps0.1" / "seed1")]
    assert child_command(plan, run, resume=True)[2:] == ["pgdat", "train", "--resume",
                                                         str(tmp_path / "sw" / "eps0.1" / "seed1")]
