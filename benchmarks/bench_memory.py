"""Peak memory of one PGD-10 adversarial-training step: pgdat's Trainer (cifar10/pgd_at_preact18 recipe) against
the plain fp32 AT loop, same model and batch.

Each contender runs in a fresh process so that its peak is its own. On CUDA: torch.cuda.max_memory_allocated
during the step minus the memory allocated before it. On CPU: the process's peak resident set (ru_maxrss) after
the step minus its resident set before it, i.e. what the step added on top of model, data and interpreter
(activations, gradients, optimiser state, allocator slack).

    python -m benchmarks.bench_memory [--batch 128] [--width 16] [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile

import torch

from benchmarks.common import add_common_args, cifar_batch, load_average, print_header

MB = 2**20


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _child(which: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    from benchmarks.bench_at_step import make_trainer, plain_fn

    torch.set_num_threads(1)
    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        if which == "pgdat":
            args.batches = 1
            step = make_trainer(args, f"{tmp}/run").train_epoch
        else:
            x, y = cifar_batch(args.batch, dev)
            step = plain_fn(x, y, 1, args.steps, args.width, 8 / 255, 2 / 255)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
            step()
            torch.cuda.synchronize(dev)
            queue.put((before / MB, (torch.cuda.max_memory_allocated(dev) - before) / MB))
        else:
            before = _rss_bytes()
            step()
            queue.put((before / MB, (_peak_rss_bytes() - before) / MB))


def measure(which: str, args: argparse.Namespace) -> tuple[float, float]:
    """(memory before the step, the step's peak on top of it) in MB, measured in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(which, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=16, help="PreAct ResNet-18 width (64 = the usual)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps K")
    add_common_args(p)
    args = p.parse_args()
    if args.quick:
        args.batch, args.width = 16, 8
    print_header("bench_memory: peak memory of one PGD-AT step", args)
    what = "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "peak RSS (ru_maxrss) increase"
    print(f"PreAct ResNet-18 width {args.width}, batch {args.batch}, PGD-{args.steps}; measure: {what}")
    rows = {"pgdat Trainer PGD-AT step": measure("pgdat", args), "plain fp32 AT loop": measure("plain", args)}
    print(f"{'':<30}{'before MB':>11}{'step peak MB':>14}")
    for name, (before, peak) in rows.items():
        print(f"{name:<30}{before:>11.1f}{peak:>14.1f}")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
