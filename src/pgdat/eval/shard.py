"""Sharding an evaluation over the ranks of a ``torchrun`` process group: rank r takes points r, r+W, r+2W, ...
and the per-point flags are gathered back into the original order, so every rank ends with the one result."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This process's share of N points: rank in [0, world)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Shard:
        """The running process group's rank and world size (one shard when none is initialised)."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's points of t (N, ...): t[rank::world]."""
        return t if self.world == 1 else t[self.rank::self.world]

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The (n, ...) tensor whose points rank r holds as ``local`` = full[r::world] (all ranks get it)."""
        if self.world == 1:
            return local
        if local.dtype == torch.bool:  # gloo has no bool all_gather
            return self.gather(local.to(torch.uint8), n).bool()
        size = -(-n // self.world)  # ceil: rank 0 holds the most points
        padded = local.new_zeros((size, *local.shape[1:]))
        padded[:local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        full = local.new_zeros((n, *local.shape[1:]))
        for r, part in enumerate(parts):
            count = len(range(r, n, self.world))
            full[r::self.world] = part[:count]
        return full

    def max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over ranks (e.g. the wall time of a step, which the slowest rank sets)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())
