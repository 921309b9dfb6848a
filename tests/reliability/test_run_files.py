"""Run files behave like every other tool's: modes follow the umask, a full disk is an error naming the file (the
previous checkpoint stays whole), temp clean-up touches only the run's own temp files, git is read without locks."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from pgdat import fileio
from pgdat.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from pgdat.cli.main import main
from pgdat.config import load_config
from pgdat.errors import PgdatError
from tests.conftest import TINY

SMALL = [*TINY, "data.n_train=128", "data.val_size=50", "eval.n_test=50", "eval.n_final=20",
         "eval.final_attacks=clean"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.json", lambda f: f.write(b"{}"))
        save_checkpoint({"w": torch.ones(2)}, tmp_path / "last.pt")
    finally:
        os.umask(old)
    for name in ("a.json", "last.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_full_disk_is_an_error_naming_the_file_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"gen": 1}, path)
    before = path.read_bytes()

    def full(_f) -> None:  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(PgdatError, match=rf"no space left on the device to write {path} .*previous last.pt"):
        atomic_write_bytes(path, full)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["last.pt"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="maps fds to names through /proc")
def test_train_on_a_full_disk_ends_in_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real_fsync, writes = os.fsync, []

    def fsync(fd: int) -> None:  # the second epoch's last.pt finds the disk full
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if name.startswith(".last.pt.pgdat-"):
            writes.append(name)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    argv = ["train", "--out", str(run)] + [a for o in [*SMALL, "train.epochs=2"] for a in ("--set", o)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"pgdat train: error: no space left on the device to write {run / 'last.pt'}")
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the previous checkpoint is whole
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_temp_cleanup_touches_only_the_runs_own_temp_files_in_its_own_directory(tmp_path):
    from pgdat.training import Trainer

    run = tmp_path / "run"
    own = [run / ".last.pt.pgdat-abcd1234.tmp", run / ".metrics.jsonl.pgdat-x_y_z_12.tmp",
           run / ".epoch_3.pt.pgdat-00000000.tmp"]
    kept = [run / "nested" / ".last.pt.pgdat-abcd1234.tmp",  # e.g. a live run inside a subfolder
            run / ".eval.json.pgdat-abcd1234.tmp",  # another command writing beside the run
            run / ".last.pt.pgdat-abcd123.tmp", run / "last.pt.pgdat-abcd1234.tmp"]  # not the exact pattern
    for p in own + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    trainer = Trainer(load_config("default", [*SMALL, "train.epochs=1"]), run, callbacks=[]).start()
    assert trainer.removed_temps == sorted(own)
    assert not any(p.exists() for p in own) and all(p.read_bytes() == b"partial" for p in kept)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_reading_the_git_sha_never_writes_the_users_index(tmp_path):
    from pgdat.runinfo import git_sha

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("a\n")
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-qm", "one")
    os.utime(repo / "f.txt", (1_500_000_000, 1_500_000_000))  # stat data differs from the index: git would refresh
    index = repo / ".git" / "index"
    before = (index.stat().st_ino, index.stat().st_mtime_ns, index.read_bytes())
    sha = git_sha(repo)
    assert sha is not None and len(sha) == 40  # same content: not dirty
    assert (index.stat().st_ino, index.stat().st_mtime_ns, index.read_bytes()) == before
    assert not (repo / ".git" / "index.lock").exists()


@pytest.mark.parametrize("damage", [b"a: [unclosed\n", b"name: x\n\x00\xff", b"just a string\n"])
def test_resume_with_a_damaged_config_yaml_is_one_line_naming_the_file(tmp_path, capsys, damage):
    run = tmp_path / "run"
    argv = ["train", "--out", str(run)] + [a for o in [*SMALL, "train.epochs=1"] for a in ("--set", o)]
    assert main(argv) == 0
    last = (run / "last.pt").read_bytes()
    (run / "config.yaml").write_bytes(damage if damage.startswith(b"just") else (run / "config.yaml").read_bytes()
                                      + damage)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("pgdat train: error: ") and str(run / "config.yaml") in err
    assert (run / "last.pt").read_bytes() == last  # nothing was touched
