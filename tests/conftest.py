"""Shared fixtures: a tiny deterministic dataset and a tiny trained CNN with BatchNorm."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

torch.set_num_threads(2)


def make_tiny_data(n: int = 256, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 1, 8, 8) in [0,1]: one bright quadrant per class plus noise; labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    for c in range(classes):
        r, col = divmod(c, 2)
        x[y == c, :, 4 * r:4 * r + 4, 4 * col:4 * col + 4] += 0.5
    return x.clamp(0, 1), y


class TinyNet(nn.Module):
    """conv-BN-ReLU-pool-linear on (B, 1, 8, 8) -> (B, 4) logits."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(nn.functional.max_pool2d(h, 2).flatten(1))


@pytest.fixture(scope="session")
def _trained_tiny() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet()
    x, y = make_tiny_data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture
def tiny_model(_trained_tiny: nn.Module) -> nn.Module:
    """A fresh copy of a tiny CNN trained to high clean accuracy on :func:`make_tiny_data` (eval mode)."""
    return copy.deepcopy(_trained_tiny)


@pytest.fixture
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A held-out batch (64, 1, 8, 8) in [0,1] with labels (64,)."""
    return make_tiny_data(64, seed=1)


TINY = [
    "data.n_train=384", "data.val_size=100", "data.batch_size=64",
    "attack.steps=2", "attack.step_size=0.15", "attack.eps_warmup_epochs=0",
    "eval.attack=pgd-3", "eval.n_test=100", "eval.final_attacks=clean,pgd-5", "eval.n_final=100", "eval.every=1",
    "train.epochs=3", "train.progress=false", "train.deterministic=true",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


class Interrupted(Exception):
    """Raised by :class:`InterruptAfterEpoch`: a run stopped from outside right after a checkpoint."""


def interrupt_after_epoch(epoch: int):  # noqa: ANN201
    """A callback that ends ``fit()`` with :class:`Interrupted` once ``epoch`` (1-based) is checkpointed, as a kill
    right after last.pt was written would; resuming the same config then continues from that epoch."""
    from pgdat.training.callbacks import Callback

    class InterruptAfterEpoch(Callback):
        def on_epoch_end(self, run, metrics) -> None:  # noqa: ANN001
            if run.epoch == epoch:
                raise Interrupted(f"interrupted after epoch {epoch}")

    return InterruptAfterEpoch()


def cli_sets(overrides: list[str]) -> list[str]:
    """``--set`` arguments for each override: ``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [a for o in overrides for a in ("--set", o)]


def snapshot(d):  # noqa: ANN001, ANN201
    """Every file under ``d`` (relative name -> bytes, mtime in ns): equal snapshots mean nothing was touched."""
    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.rglob("*")) if p.is_file()}
