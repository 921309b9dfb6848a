"""Atomic file writes: a crash or a full disk leaves the old file or the new one, never a torn file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

# temp file of an atomic write of NAME: ".NAME.pgdat-XXXXXXXX.tmp" (the 8 characters come from tempfile.mkstemp)
TEMP_FILE = re.compile(r"^\.(?P<target>.+)\.pgdat-[a-z0-9_]{8}\.tmp$")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, write: Any) -> Path:
    """Write a file atomically: ``write(fileobj)`` into a temp file beside ``path``, fsync, rename over ``path``.

    A crash (or a full disk) at any moment leaves either the old file or the new one, never a torn file; a process
    killed mid-write also leaves its temp file ``.NAME.pgdat-XXXXXXXX.tmp`` (see :func:`remove_stale_temps`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pgdat-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete the temp files that interrupted :func:`atomic_write_bytes` calls left in ``directory`` and its
    subfolders; returns them. Only regular files named like pgdat's own temp files (:data:`TEMP_FILE`) are removed;
    symlinks are neither followed nor removed. Call it only when no write into ``directory`` can be in flight
    (a run starting or resuming)."""
    removed = []
    for root, _, files in os.walk(directory, followlinks=False):
        for name in files:
            p = Path(root) / name
            if TEMP_FILE.match(name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return sorted(removed)
