"""``pgdat eval``: progress lines on stderr, and a killed evaluation resumed from the state file next to --json."""

from __future__ import annotations

import json

import pytest

import pgdat.cli.eval as cli_eval
from pgdat.cli.main import main

ARGS = ["eval", "--model", "small_cnn", "--data", "mnist5k", "--n", "24", "--attacks", "clean,pgd-2,fgsm",
        "--eps", "0.1", "--batch-size", "8", "--device", "cpu"]


class _Killed(Exception):
    pass


def test_progress_lines_and_attack_label(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main([*ARGS, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    lines = [s for s in captured.err.splitlines() if s.startswith("[eval] ")]
    assert lines and "\r" not in captured.err
    assert lines[0].startswith("[eval] pgd-2 batch 1/") and "points left" in lines[0] and "ETA" in lines[0]
    assert "robust accuracy by: PGD-2 > FGSM" in captured.out
    assert json.loads(out.read_text())["robust_accuracy_by"] == "PGD-2 > FGSM"
    assert not (tmp_path / "eval.json.state").exists()


def test_killed_eval_resumes_from_the_state_next_to_the_json(tmp_path, monkeypatch):
    whole, out = tmp_path / "whole.json", tmp_path / "eval.json"
    args = [*ARGS, "--batch-size", "1"]  # the untrained model gets few points right: one batch per point
    assert main([*args, "--json", str(whole), "--no-progress"]) == 0

    class KillAtFirstBatch:
        def __call__(self, e) -> None:
            assert e.batches >= 2  # killed mid-attack, not between attacks
            raise _Killed

    monkeypatch.setattr(cli_eval, "PrintProgress", KillAtFirstBatch)
    with pytest.raises(_Killed):
        main([*args, "--json", str(out)])
    assert (tmp_path / "eval.json.state").exists() and not out.exists()
    monkeypatch.undo()
    assert main([*args, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == json.loads(whole.read_text())["accuracy"]
    assert not (tmp_path / "eval.json.state").exists()


def test_sigkilled_eval_process_resumes_to_the_uninterrupted_result(tmp_path):
    """A real SIGKILL of a `pgdat eval` process (the test hook kills it right after an attack's second batch was
    saved), then the same command again: it goes on from the state file to the uninterrupted run's numbers."""
    import os
    import signal
    import subprocess
    import sys

    from pgdat.killhook import EVAL_KILL_ENV

    args = [sys.executable, "-m", "pgdat", *ARGS, "--batch-size", "1", "--no-progress"]  # one batch per point
    whole, out = tmp_path / "whole.json", tmp_path / "eval.json"
    env = {k: v for k, v in os.environ.items() if k != EVAL_KILL_ENV}
    subprocess.run([*args, "--json", str(whole)], env=env, check=True, capture_output=True)
    killed = subprocess.run([*args, "--json", str(out)], env={**env, EVAL_KILL_ENV: "2"}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "eval.json.state").exists() and not out.exists()
    subprocess.run([*args, "--json", str(out)], env=env, check=True, capture_output=True)
    assert json.loads(out.read_text())["accuracy"] == json.loads(whole.read_text())["accuracy"]
    assert not (tmp_path / "eval.json.state").exists()
