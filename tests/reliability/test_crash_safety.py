"""Crash safety of checkpoint writes: SIGKILL at random moments during a write loop, and a full disk mid-write."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pgdat import checkpoint, fileio
from pgdat.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint

N_KILLS = 12
# imports torch once, then forks one writer per path; each saves a ~4 MB checkpoint over and over and reports
# "index pid gen" after every complete write; each generation is self-consistent (tensor filled with gen)
WRITER = textwrap.dedent("""
    import os, sys, torch
    from pgdat.checkpoint import save_checkpoint
    torch.set_num_threads(1)
    for k, path in enumerate(sys.argv[1:]):
        if os.fork() == 0:
            gen = 0
            while True:
                save_checkpoint({"gen": gen, "w": torch.full((1_000_000,), float(gen)), "tail": [gen] * 100}, path)
                os.write(1, f"{k} {os.getpid()} {gen}\\n".encode())  # one write: lines never interleave
                gen += 1
    for _ in sys.argv[1:]:
        os.wait()
""")


def _assert_complete(path: Path) -> int:
    """The checkpoint loads and is one whole generation; returns the generation."""
    ckpt = load_checkpoint(path)
    gen = ckpt["gen"]
    assert ckpt["w"].shape == (1_000_000,) and bool((ckpt["w"] == gen).all())
    assert ckpt["tail"] == [gen] * 100
    return gen


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    """Wait until a SIGKILLed process (not our child) is gone or a zombie."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"writer {pid} survived SIGKILL")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc").is_dir(), reason="needs fork and /proc (Linux)")
def test_sigkill_during_checkpoint_writes_always_leaves_a_complete_file(tmp_path):
    rng = random.Random(0)
    paths = [tmp_path / f"w{k}" / "last.pt" for k in range(N_KILLS)]
    parent = subprocess.Popen([sys.executable, "-c", WRITER, *map(str, paths)], stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.DEVNULL, env=os.environ | {"OMP_NUM_THREADS": "1"})
    pids: dict[int, int] = {}  # path index -> writer pid, known once that writer finished its first write
    try:
        while len(pids) < N_KILLS:
            k, pid, _ = map(int, parent.stdout.readline().split())
            pids.setdefault(k, pid)
        gens, mid_write = [], 0
        for k, pid in sorted(pids.items()):
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
            _wait_dead(pid)
            gens.append(_assert_complete(paths[k]))
            # temp files of interrupted writes may remain beside the checkpoint (never read); the checkpoint is whole
            temps = [p for p in paths[k].parent.iterdir() if p != paths[k]]
            assert all(p.name.startswith(".last.pt.") and p.suffix == ".tmp" for p in temps)
            mid_write += bool(temps)
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert len(gens) == N_KILLS and all(g >= 0 for g in gens)
    assert mid_write >= N_KILLS // 4, f"only {mid_write} of {N_KILLS} kills interrupted a write"
    print(f"{N_KILLS} kills, {mid_write} during a write, generations on disk {gens}: all complete")


def test_full_disk_mid_write_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"gen": 1, "w": torch.ones(1000)}, path)
    before = path.read_bytes()

    def half_then_enospc(payload, f):  # noqa: ANN001
        f.write(b"\x80\x02partial checkpoint bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", half_then_enospc)
    with pytest.raises(OSError) as info:
        save_checkpoint({"gen": 2, "w": torch.zeros(1000)}, path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["gen"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_failure_during_fsync_or_rename_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    atomic_write_bytes(path, lambda f: f.write(b"old"))

    def no_space(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", no_space)
    with pytest.raises(OSError):
        atomic_write_bytes(path, lambda f: f.write(b"new"))
    monkeypatch.undo()
    monkeypatch.setattr(fileio.os, "replace", no_space)
    with pytest.raises(OSError):
        atomic_write_bytes(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
