"""Run directories defend themselves: safe names, one training per directory (two real processes race), nothing of a
run overwritten unasked (--overwrite moves it aside), output paths of report/eval never replace a run's files."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgdat.checkpoint import save_checkpoint
from pgdat.cli.main import main
from pgdat.config import load_config
from pgdat.errors import PgdatError
from tests.conftest import TINY, snapshot
from tests.conftest import cli_sets as sets

SMALL = [*TINY, "data.n_train=128", "data.val_size=50", "eval.n_test=50", "eval.n_final=20",
         "eval.final_attacks=clean", "train.epochs=1"]




@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One finished 1-epoch run trained by ``pgdat train`` (copy it before changing it)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *sets(SMALL), "--out", str(run)]) == 0
    return run


def copy_of(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


# ------------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "/tmp/evil", "", "a\\b", " x", "-x", "$\\foo$",
                                  "x" * 101, "run\nname"])
def test_a_run_name_must_be_one_safe_path_component(name):
    from pgdat.training.validate import validate_config

    cfg = load_config("default", [])
    with pytest.raises(PgdatError, match=r"name .* is not a safe run name.*e\.g\. name=cifar10_pgd_at"):
        validate_config(dataclasses.replace(cfg, name=name))


@pytest.mark.parametrize("name", ["default", "cifar10_pgd_at_preact18", "run-1.seed0", "A" * 100])
def test_ordinary_run_names_are_accepted(name):
    from pgdat.rundir import check_run_name

    assert check_run_name(name) == name


@settings(max_examples=400, deadline=None)
@given(name=st.one_of(st.text(max_size=110), st.from_regex(r"[A-Za-z0-9._/\\ -]{0,12}", fullmatch=True)))
def test_every_accepted_name_is_one_component_inside_runs(name):
    from pgdat.rundir import check_run_name

    try:
        assert check_run_name(name) == name
    except PgdatError as e:
        assert "is not a safe run name" in str(e)
        return
    path = Path("/data/runs") / name
    assert path.parent == Path("/data/runs") and os.path.normpath(path) == str(path) and path.name == name


def test_name_dotdot_writes_nothing_outside_runs(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text("mine: 1\n")  # a file of the user's that runs/.. would overwrite
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    assert main(["train", *sets([*SMALL, "name=.."])]) == 2
    assert "name '..' is not a safe run name" in capsys.readouterr().err
    assert snapshot(tmp_path) == before and sorted(os.listdir(work)) == ["config.yaml"]


# ------------------------------------------------------------------------------------------------- ownership
def _train_proc(out: Path, extra: list[str]) -> subprocess.Popen:
    env = os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pgdat", "train", *sets([*SMALL, *extra]), "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_racing_for_one_run_directory_exactly_one_trains(tmp_path):
    run = tmp_path / "run"
    procs = [_train_proc(run, ["train.epochs=2"]) for _ in range(2)]
    finished_first = None
    while finished_first is None:
        finished_first = next((p for p in procs if p.poll() is not None), None)
        time.sleep(0.02)
    other = procs[1 - procs.index(finished_first)]
    still_running = other.poll() is None  # the refused one ends at once, the winner trains for seconds
    results = [(p, *p.communicate(timeout=600)) for p in procs]
    loser = [r for r in results if r[0].returncode != 0]
    winner = [r for r in results if r[0].returncode == 0]
    assert len(winner) == 1 and len(loser) == 1, [(p.returncode, err) for p, _, err in results]
    (lp, lout, lerr), (wp, _, _) = loser[0], winner[0]
    assert lp is finished_first and still_running, "the refused process must end while the other trains"
    assert lp.returncode == 2 and "Traceback" not in lerr
    assert f"is in use by another pgdat training (pid {wp.pid} on host" in lerr
    assert "run " not in lout  # it never started training
    rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("epoch") for r in rows[1:]] == [1, 2] and torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
    assert not (run / ".pgdat-train.lock").exists()  # released when the training ended


HOLDER = textwrap.dedent("""
    import sys, time
    from pgdat.rundir import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_live_holder_is_named_and_a_dead_holders_lock_is_taken_over(tmp_path):
    from pgdat.rundir import LOCK_NAME, RunLock

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        with pytest.raises(PgdatError, match=rf"in use by another pgdat training \(pid {holder.pid} on host"):
            RunLock(run).acquire()
        assert time.perf_counter() - t0 < 0.5  # refused at once, not after a wait
    finally:
        holder.kill()  # like kill -9: the lock file stays behind, naming a dead pid
        holder.wait()
    record = json.loads((run / LOCK_NAME).read_text())
    assert record["pid"] == holder.pid
    with RunLock(run) as lock:  # the kernel dropped the dead holder's lock: taken over
        assert lock.took_over["pid"] == holder.pid
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (run / LOCK_NAME).exists()


def test_a_trainer_refuses_a_directory_another_process_holds(tmp_path):
    from pgdat.training import Trainer

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PgdatError, match=rf"pid {holder.pid}"):
            Trainer(load_config("default", SMALL), run, callbacks=[]).start()
        assert sorted(os.listdir(run)) == [".pgdat-train.lock"]  # no init.pt written
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------- no silent overwrite
def test_a_finished_run_without_last_pt_is_not_overwritten(finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path / "run")
    (run / "last.pt").unlink()
    before = snapshot(run)
    assert main(["train", *sets(SMALL), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run} already holds a run" in err and "--overwrite" in err
    assert snapshot(run) == before


def test_overwrite_moves_the_old_run_aside_and_deletes_nothing(finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path / "run")
    before = snapshot(run)
    assert main(["train", *sets([*SMALL, "train.seed=1"]), "--out", str(run), "--overwrite"]) == 0
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert f"moved the old run in {run} aside to {moved}" in capsys.readouterr().out
    assert snapshot(moved) == before
    assert torch.load(run / "last.pt", weights_only=True)["config"]["train"]["seed"] == 1


def test_a_directory_of_other_files_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", *sets(SMALL), "--out", str(tmp_path), "--overwrite"]) == 2
    assert "holds files that a pgdat run does not write (notes.txt)" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


# ------------------------------------------------------------------------------------------------ output paths
def test_report_output_never_overwrites_a_runs_files(finished_run, tmp_path, capsys):
    run = copy_of(finished_run, tmp_path / "run")
    before = snapshot(run)
    for name in ("last.pt", "best.pt", "metrics.jsonl", "final.json", "config.yaml"):
        assert main(["report", str(run), "-o", str(run / name)]) == 2
        assert f"would overwrite {run / name}, a file of the run" in capsys.readouterr().err
    (tmp_path / "link.html").symlink_to(run / "last.pt")
    assert main(["report", str(run), "-o", str(tmp_path / "link.html")]) == 2
    assert main(["report", str(run), "-o", str(run)]) == 2  # a directory
    assert snapshot(run) == before
    assert main(["report", str(run), "-o", str(run / "report.html")]) == 0  # beside the run's files is fine


def test_eval_json_never_overwrites_a_runs_files(tmp_path, capsys):
    run = tmp_path / "run"
    save_checkpoint({"epoch": 1}, run / "last.pt")
    (run / "final.json").write_text('{"epochs": 1}')
    before = snapshot(run)
    t0 = time.perf_counter()
    assert main(["eval", "--attacks", "clean", "--n", "8", "--json", str(run / "final.json")]) == 2
    assert "would overwrite" in capsys.readouterr().err and time.perf_counter() - t0 < 5  # before evaluating
    assert snapshot(run) == before
