"""Seeds of the random streams: one per (run seed, epoch, rank, stream), stable across runs and resumes."""

from __future__ import annotations

import hashlib


def stream_seed(seed: int, epoch: int, rank: int, stream: str) -> int:
    """A 63-bit seed for one random stream of one epoch on one rank (stable across runs and resumes)."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{rank}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
