"""Atomic file writes: a crash or a full disk leaves the old file or the new one, never a torn file."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgdat.errors import PgdatError

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


class DiskFullError(PgdatError, OSError):
    """No space (or quota) left while writing a file: a PgdatError for the user, still an ``OSError`` (with
    ``errno`` and ``filename``) for code that handles I/O errors."""

    def __str__(self) -> str:
        return str(self.args[0])


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _file_mode() -> int:
    """The mode a new file gets under the process umask (``0o666 & ~umask``), read without changing the umask
    where /proc allows (changing it briefly would race with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _disk_full(path: Path, e: OSError) -> DiskFullError:
    err = DiskFullError(f"no space left on the device to write {path} ({os.strerror(e.errno)}): the previous "
                        f"{path.name} (if any) is unchanged and no partial file was left; free space on that disk, "
                        "or write elsewhere, and retry (a training resumes from its last.pt with "
                        "pgdat train --resume RUN_DIR)")
    err.errno, err.filename = e.errno, str(path)
    return err


def atomic_write_bytes(path: str | Path, write: Any) -> Path:
    """Write a file atomically: ``write(fileobj)`` into a temp file beside ``path``, fsync, rename over ``path``.
    The file gets the usual mode of a new file under the umask (e.g. 0644 under umask 022), not mkstemp's 0600.

    A crash (or a full disk) at any moment leaves either the old file or the new one, never a torn file; a process
    killed mid-write also leaves its temp file ``.NAME.pgdat-XXXXXXXX.tmp`` (see :func:`remove_stale_temps`). A full
    disk raises :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pgdat-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise _disk_full(path, e) from None
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temps(directory: str | Path, owns: Callable[[str], bool] | None = None) -> list[Path]:
    """Delete the temp files that interrupted :func:`atomic_write_bytes` calls of the run left in ``directory``
    itself (never its subfolders); returns them. Only regular files named exactly like pgdat's temp files
    (:data:`TEMP_FILE`) whose target name ``owns`` accepts (e.g. :func:`pgdat.rundir.is_run_file`; None: any) are
    removed; symlinks are neither followed nor removed. Call it only while holding the directory's
    :class:`pgdat.rundir.RunLock` (no write of the run can then be in flight)."""
    removed = []
    with os.scandir(directory) as entries:
        for entry in entries:
            m = TEMP_FILE.match(entry.name)
            if m and (owns is None or owns(m["target"])) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return sorted(removed)
