"""Run directories that defend themselves: one safe name, one owner at a time, nothing overwritten unasked.

- :func:`check_run_name`: a run name is one safe path component (``runs/<name>`` stays inside ``runs``).
- :class:`RunLock`: an exclusive lock for the life of a training (``fcntl.flock`` on ``DIR/.pgdat-train.lock``,
  which records the holder's pid and host). The kernel drops the lock when its holder dies, even by kill -9, so a
  lock file a dead process left is taken over; a live holder makes a second process fail at once, naming its pid.
- :func:`run_contents` / :func:`check_fresh_start`: a new training never writes into a directory holding results
  unless asked; :meth:`RunLock.move_aside` moves the old run to a new name (never deletes).
- :func:`guard_output`: the output paths of ``pgdat report`` / ``pgdat eval`` never overwrite a run's files.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pgdat.errors import PgdatError
from pgdat.fileio import TEMP_FILE

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks (documented: one training per directory)
    fcntl = None

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
LOCK_NAME = ".pgdat-train.lock"
# files a training writes at the top of its run directory; epoch_N.pt and final.epochN.json come on top
RUN_FILES = frozenset({"config.yaml", "metrics.jsonl", "init.pt", "last.pt", "best.pt", "final.json", "curves.png",
                       "per_class.png"})
NUMBERED_RUN_FILE = re.compile(r"^(epoch_\d+\.pt|final\.epoch\d+\.json)$")
# what a run that never finished an epoch leaves: a new training may start over it (nothing trained is lost)
UNSTARTED_FILES = frozenset({"config.yaml", "init.pt", "metrics.jsonl"})


def check_run_name(name: object, key: str = "name") -> str:
    """``name`` if it is one safe path component (letters, digits, ``_ . -``; starts with a letter or digit; at most
    100 characters), else a PgdatError naming ``key``: ``..``, ``a/b`` or ``/tmp/x`` would write outside ``runs/``."""
    if isinstance(name, str) and RUN_NAME.match(name):
        return name
    raise PgdatError(f"{key} {name!r} is not a safe run name: use one path component of letters, digits and _ . - "
                     f"that starts with a letter or digit (at most 100 characters), e.g. {key}=cifar10_pgd_at; "
                     "choose where the run goes with --out")


def is_run_file(name: str) -> bool:
    """Whether ``name`` (a file name, no folder) is one of the files a training writes into its run directory."""
    return name in RUN_FILES or bool(NUMBERED_RUN_FILE.match(name))


def _is_own_temp(name: str) -> bool:
    m = TEMP_FILE.match(name)
    return bool(m) and is_run_file(m["target"])


@dataclass(frozen=True)
class RunContents:
    """What a directory holds, by name: ``results`` (a run's trained state or evaluations) and ``others`` (files
    a training does not write). Empty both: a training may start there."""

    results: tuple[str, ...]
    others: tuple[str, ...]


def _metrics_rows(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip()) - 1  # the first line is the header
    except OSError:
        return 0


def run_contents(directory: str | Path) -> RunContents:
    """Classify the entries of ``directory`` (a missing directory is empty). Files of a run that never finished
    an epoch (init.pt, config.yaml, a metrics.jsonl with only its header), the lock file and the run's own temp
    files count as neither."""
    d = Path(directory)
    if not d.is_dir():
        return RunContents((), ())
    results, others = [], []
    for name in sorted(os.listdir(d)):
        if name == LOCK_NAME or _is_own_temp(name):
            continue
        if name in UNSTARTED_FILES and (name != "metrics.jsonl" or _metrics_rows(d / name) <= 0):
            continue
        (results if is_run_file(name) else others).append(name)
    return RunContents(tuple(results), tuple(others))


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_fresh_start(directory: str | Path, overwrite: bool) -> bool:
    """Whether a new training into ``directory`` must first move an old run aside (``overwrite`` asked for it);
    a PgdatError when it holds a run and ``overwrite`` is off, or holds files that are not a run's."""
    d, contents = Path(directory), run_contents(directory)
    if contents.others:
        raise PgdatError(f"{d} holds files that a pgdat run does not write ({_listing(contents.others)}): a "
                         "training writes only into a new or empty directory, or one holding a run; pick another "
                         "--out, e.g. --out runs/my_run")
    if contents.results and not overwrite:
        raise PgdatError(f"{d} already holds a run ({_listing(contents.results)}): continue it with "
                         f"pgdat train --resume {d}, pick another --out, or add --overwrite to move the old run "
                         "aside (renamed, not deleted) and start afresh")
    return bool(contents.results)


def _describe(record: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record["time"])) if "time" in record else "?"
    return f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, since {since}"


class RunLock:
    """Exclusive ownership of a run directory by this process (see the module docstring). Use as a context
    manager, or :meth:`acquire` / :meth:`release`; a lock that is garbage-collected is released."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.took_over: dict | None = None  # the record of a dead holder whose lock file was taken over
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, create: bool = True) -> RunLock:
        """Take the lock now or raise a PgdatError naming the holder; ``create`` makes the directory if missing."""
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        elif not self.directory.is_dir():
            raise PgdatError(f"run directory {self.directory} does not exist")
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            if not self._try_lock(fd):
                os.close(fd)
                raise PgdatError(f"run directory {self.directory} is in use by another pgdat training "
                                 f"({self._holder()}): two trainings would interleave its checkpoints and metrics; "
                                 "wait for it to finish or stop it, or train into another --out")
            try:  # a previous holder may have removed the file between our open and lock: then lock the new one
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self.took_over = _read_record(fd)
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
            self._fd = fd
        return self

    @staticmethod
    def _try_lock(fd: int) -> bool:
        if fcntl is None:  # pragma: no cover
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _holder(self) -> str:
        """The holder's record; it may be mid-write just after taking the lock, so wait up to a second for it."""
        for _ in range(100):
            try:
                with self.path.open("rb") as f:
                    record = json.loads(f.read() or b"null")
            except (OSError, ValueError):
                record = None
            if isinstance(record, dict):
                return f"{_describe(record)}; its lock file is {self.path}"
            time.sleep(0.01)
        return f"holder unknown; its lock file is {self.path}"

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the lock; idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                os.unlink(self.path)  # while still locked: a waiter that opened it retries on a new file
        except OSError:
            pass
        os.close(fd)  # closing drops the flock

    def move_aside(self) -> Path:
        """Rename the locked directory to ``NAME.replaced-YYYYmmdd-HHMMSS[-k]`` beside it and lock a fresh, empty
        directory under the old name; returns where the old run went. Nothing is deleted."""
        if self._fd is None:
            raise RuntimeError("move_aside needs the lock held")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        dest = self.directory.with_name(f"{self.directory.name}.replaced-{stamp}")
        k = 1
        while dest.exists():
            k += 1
            dest = self.directory.with_name(f"{self.directory.name}.replaced-{stamp}-{k}")
        os.rename(self.directory, dest)
        self.path = dest / LOCK_NAME  # our lock file moved with the old run
        fresh = RunLock(self.directory).acquire()
        self.release()
        self.path, self._fd, fresh._fd = fresh.path, fresh._fd, None
        return dest

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the kernel drops the lock with the process anyway
            pass


def _read_record(fd: int) -> dict | None:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _inside_run(path: Path) -> bool:
    """Whether ``path`` would replace a file of a run: a run file's name in a directory that holds a run file, or
    any existing ``.pt`` file there."""
    parent = path.parent
    holds_run = parent.is_dir() and any((parent / n).is_file() for n in ("last.pt", "best.pt", "init.pt",
                                                                         "metrics.jsonl", "final.json"))
    return holds_run and (is_run_file(path.name) or path.suffix == ".pt" or path.name == LOCK_NAME)


def guard_output(path: str | Path, option: str, example: str) -> Path:
    """``path`` as an output file of a command (``option``: its flag, e.g. ``-o``; ``example``: a good file name,
    e.g. ``report.html``), unless writing it would overwrite a run's file (checkpoints, config, metrics,
    final.json, plots) or a directory: then a PgdatError."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise PgdatError(f"{option} {p} is a directory: give a file name, e.g. {option} {p / example}")
    for q in {p, p.resolve()}:
        if _inside_run(q):
            raise PgdatError(f"{option} {p} would overwrite {q}, a file of the run in {q.parent}: write the output "
                             f"elsewhere, e.g. {option} {q.parent / example}")
    return p
