"""Shared helpers for the benchmark scripts: timing, machine description, models and data.

Benchmarks are plain scripts (never part of the tests): they print ratios measured in one process on one model.
Every script takes ``--device``, ``--repeats``, ``--clock`` and ``--quick`` (a seconds-long smoke run with tiny
sizes, for checking that the script still works, not for figures).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pgdat.models import create_model
from pgdat.precision import cpu_supports_bf16, native_bf16_features

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    isa = torch.backends.cpu.get_cpu_capability()
    native = ", ".join(native_bf16_features())
    bf16 = f"native bf16 ({native})" if cpu_supports_bf16() else "no native bf16 (bf16 is emulated: slow)"
    return f"{cpu}, {torch.get_num_threads()} threads, {isa}, {bf16} (torch {torch.__version__})"


def load_average() -> str:
    """The 1/5/15-minute load averages (runnable processes) and the core count: a busy machine inflates timings."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average n/a"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median reported)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time (the figure that matters on a quiet machine); cpu: this process's CPU "
                        "time (steadier on a shared machine; use with OMP_NUM_THREADS=1, CPU only)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds, not for figures")


def print_header(title: str, args: argparse.Namespace) -> None:
    """What was measured, where, and how busy the machine was (printed at the start and again at the end)."""
    print(f"== {title}")
    print(f"machine: {machine()}; {load_average()}; clock: {args.clock}; repeats: {args.repeats}"
          + ("; QUICK smoke run (tiny sizes)" if args.quick else ""), flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(clock: str) -> float:
    return time.process_time() if clock == "cpu" else time.perf_counter()


def timeit(fn: Callable[[], object], device: torch.device, *, repeats: int = 5, warmup: int = 1,
           clock: str = "wall") -> float:
    """Median time of ``fn()`` in seconds (after ``warmup`` calls), synchronising the device.

    clock: ``wall`` (perf_counter) or ``cpu`` (process CPU time, all threads summed).
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = now(clock)
        fn()
        sync(device)
        times.append(now(clock) - t0)
    return statistics.median(times)


def timeit_many(fns: dict[str, Callable[[], object]], device: torch.device, *, repeats: int = 5, warmup: int = 1,
                clock: str = "wall") -> dict[str, float]:
    """Median times of several functions measured interleaved (round-robin), so that a change in machine load
    during the run affects all of them alike; returns name -> seconds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = now(clock)
            fn()
            sync(device)
            times[k].append(now(clock) - t0)
    return {k: statistics.median(v) for k, v in times.items()}


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
    return x.contiguous().to(device), y.to(device)


def data_source() -> str:
    return "CIFAR-10 test images (../shared/data)" if (SHARED / "cifar10_test.npz").is_file() else \
        "random CIFAR-10-sized tensors"


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
    """PreAct ResNet-18 at ``width`` (16 = a quarter of the usual 64) with CIFAR-10 normalisation, seeded init."""
    torch.manual_seed(0)
    return create_model("preact_resnet18", 10, width=width, mean=CIFAR_MEAN, std=CIFAR_STD).to(device)
