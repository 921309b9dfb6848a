"""Progress of a long evaluation: one plain line per attacked batch, readable when redirected to a file."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class BatchEvent:
    """The state of the cascade after one batch of one attack.

    attack: spec (e.g. ``apgd-t``); batch, batches: this batch's number (1-based) and the expected count for this
    attack (it grows if out-of-memory halving shrinks the batch); left: points this attack has still to attack;
    robust, n: points still robust under the cascade so far, out of n (this process's shard); seconds: wall time of
    this attack so far (s), including time spent before a resume.
    """

    attack: str
    batch: int
    batches: int
    left: int
    robust: int
    n: int
    seconds: float

    @property
    def eta(self) -> float:
        """Seconds until this attack finishes, at its mean time per batch so far."""
        return self.seconds / max(self.batch, 1) * (self.batches - self.batch)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_event(e: BatchEvent) -> str:
    """``[eval] apgd-t batch 3/8: 412 points left, robust 45.30% so far, 12.1 s/batch, ETA 1m01s``."""
    acc = 100 * e.robust / e.n if e.n else float("nan")
    return (f"[eval] {e.attack} batch {e.batch}/{e.batches}: {e.left} points left, robust {acc:.2f}% so far "
            f"({e.robust}/{e.n}), {e.seconds / max(e.batch, 1):.1f} s/batch, ETA {_duration(e.eta)}")


class PrintProgress:
    """Writes :func:`format_event` lines to ``stream`` (default stderr), each ended by a newline and flushed, never
    a carriage return, so a log file or a pipe reads the same as a terminal."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "") -> None:
        self.stream, self.prefix = stream, prefix

    def __call__(self, event: BatchEvent) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.prefix + format_event(event) + "\n")
        stream.flush()


class AttackDoneProgress(PrintProgress):
    """Quieter :class:`PrintProgress`: one line per attack, written when its last batch is done (no points left),
    ``[eval] apgd-t done: robust 45.30% so far (453/1000), 1m42s``; for runs whose per-batch lines are off
    (``train.progress=false``), so that a long final evaluation still says what it did."""

    def __call__(self, event: BatchEvent) -> None:
        if event.left:
            return
        acc = 100 * event.robust / event.n if event.n else float("nan")
        stream = self.stream or sys.stderr
        stream.write(f"{self.prefix}[eval] {event.attack} done: robust {acc:.2f}% so far ({event.robust}/{event.n}), "
                     f"{_duration(event.seconds)}\n")
        stream.flush()
