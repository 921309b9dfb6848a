"""Shared helpers for the benchmark scripts: timing, machine description, models and data.

Benchmarks are plain scripts (never part of the tests): they print ratios measured in one process on one model.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pgdat.models import create_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (after ``warmup`` calls), synchronising the device."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cifar_batch(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n CIFAR-10 test images in [0,1] (the lossless copy in ../shared/data when present, else random tensors)."""
    path = SHARED / "cifar10_test.npz"
    if path.is_file():
        d = np.load(path)
        x = torch.from_numpy(d["x"][:n]).permute(0, 3, 1, 2).float().div(255)
        y = torch.from_numpy(d["y"][:n]).long()
        reps = -(-n // len(y))
        x, y = x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n]
    else:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    return x.to(device), y.to(device)


def mnist_adv_model(device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor] | None:
    """advertorch's PGD-trained MNIST LeNet5 (../shared/data) in pgdat's small_cnn and the MNIST test set, or None."""
    w, d = SHARED / "mnist_lenet5_advtrained.pt", SHARED / "mnist_test.npz"
    if not (w.is_file() and d.is_file()):
        return None
    model = create_model("small_cnn", 10, in_channels=1)
    model.net.load_state_dict(torch.load(w, map_location="cpu", weights_only=True))
    data = np.load(d)
    x = torch.from_numpy(data["x"]).float().div(255)[:, None]
    return model.to(device).eval(), x.to(device), torch.from_numpy(data["y"]).long().to(device)


def preact18(device: torch.device, width: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("preact_resnet18", 10, width=width, mean=(0.4914, 0.4822, 0.4465),
                        std=(0.2471, 0.2435, 0.2616)).to(device)
