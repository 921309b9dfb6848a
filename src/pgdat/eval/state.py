"""Resume state of an evaluation: the cascade's flags after each attacked batch, in a file next to the output,
so a killed evaluation goes on where it stopped and ends with the result of an uninterrupted run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgdat.checkpoint import atomic_write_bytes
from pgdat.errors import PgdatError

STATE_VERSION = 1


def fingerprint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: dict[str, Any]) -> dict[str, Any]:
    """What the state belongs to: the evaluation's options, the data's shape and sums, the model's parameter
    sums (x (N, C, H, W), y (N,)); a state file whose fingerprint differs is never resumed (one host sync)."""
    params = [p.detach().double().sum() for p in model.state_dict().values() if p.is_floating_point()]
    sums = torch.stack([x.double().sum(), (y.double() * torch.arange(1, len(y) + 1, device=y.device)).sum(),
                        torch.stack(params).sum() if params else x.new_zeros((), dtype=torch.float64)]).tolist()
    return {**options, "x_shape": list(x.shape), "x_sum": round(sums[0], 6), "y_sum": round(sums[1], 6),
            "model_sum": round(sums[2], 6), "version": STATE_VERSION}


@dataclass
class EvalState:
    """The cascade so far. flags/seconds: finished steps (spec -> (n,) bool on CPU, s); current: the attack in
    progress, with start (n,) the flags it began from, pos the points of start's robust set already attacked,
    robust (n,) the flags now, gen its random stream's state, elapsed its seconds so far; batch_size: the batch
    size in use (after any out-of-memory halving)."""

    key: dict[str, Any]
    path: Path | None = None
    flags: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    current: str | None = None
    start: torch.Tensor | None = None
    robust: torch.Tensor | None = None
    pos: int = 0
    gen: torch.Tensor | None = None
    elapsed: float = 0.0
    batch_size: int = 0

    def save(self) -> None:
        """Write the state atomically (a kill mid-write leaves the previous state); no-op without a path."""
        if self.path is None:
            return
        payload = {k: getattr(self, k) for k in ("key", "seconds", "current", "pos", "gen", "elapsed", "batch_size")}
        payload |= {"flags": {k: v.cpu() for k, v in self.flags.items()},
                    "start": None if self.start is None else self.start.cpu(),
                    "robust": None if self.robust is None else self.robust.cpu()}
        atomic_write_bytes(self.path, lambda f: torch.save(payload, f))

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def open_state(path: str | Path | None, key: dict[str, Any], device: torch.device) -> tuple[EvalState, bool]:
    """(the state at ``path`` if it exists and belongs to ``key``, else a fresh one; True when resumed). A state
    of another evaluation raises a PgdatError naming the file (it is never overwritten or mixed in)."""
    if path is None or not Path(path).exists():
        return EvalState(key=key, path=None if path is None else Path(path)), False
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same actionable message
        raise PgdatError(f"cannot read the evaluation state file {path} ({type(e).__name__}); delete it to start "
                         "the evaluation afresh") from None
    if raw.get("key") != key:
        diff = sorted(k for k in set(key) | set(raw.get("key", {})) if key.get(k) != raw.get("key", {}).get(k))
        raise PgdatError(f"the evaluation state file {path} belongs to another evaluation (differs in: "
                         f"{', '.join(diff)}); delete it, or write the output elsewhere (e.g. --json other.json)")
    move = {k: (v.to(device) if isinstance(v, torch.Tensor) and k != "gen" else v) for k, v in raw.items()}
    move["flags"] = {k: v.to(device) for k, v in raw["flags"].items()}
    return EvalState(path=path, **move), True
