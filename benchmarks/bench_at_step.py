"""PGD-10 adversarial-training step: pgdat's Trainer (the real code path: the cifar10/pgd_at_preact18 recipe's
method, attack, loader and optimiser) against the floor measured in the same precision and memory format, and
against the plain fp32 AT loop people write (Rice et al.'s: loss.backward() inside the attack, NCHW).

floor = one training step (forward, backward, SGD update) + K input-gradient-only passes in the attack's BatchNorm
mode, on a fixed batch with no data loading and no perturbation bookkeeping.

    python -m benchmarks.bench_at_step [--batch 128] [--batches 4] [--width 16] [--compile] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
import torch.nn.functional as F

from benchmarks.common import (
    CIFAR_MEAN,
    CIFAR_STD,
    add_common_args,
    cifar_batch,
    data_source,
    load_average,
    preact18,
    print_header,
    sync,
    timeit_many,
)
from pgdat.attacks.core import attack_mode
from pgdat.config import load_config
from pgdat.data.bundle import DataBundle, DatasetInfo, Split
from pgdat.precision import autocast
from pgdat.training.trainer import Trainer


def synthetic_bundle(n: int, device: torch.device) -> DataBundle:
    """n CIFAR-10-sized training images (uint8) and a tiny test split, as the Trainer's ``data``."""
    x, y = cifar_batch(n, torch.device("cpu"))
    x8 = (x * 255).round().to(torch.uint8)
    info = DatasetInfo("bench-cifar10", 10, (3, 32, 32), CIFAR_MEAN, CIFAR_STD, tuple(str(i) for i in range(10)),
                       default_augment="crop_flip")
    return DataBundle(info=info, train=Split(x8, y), val=None, test=Split(x8[:8], y[:8]))


def make_trainer(args: argparse.Namespace, out: str, *, compile_: bool = False) -> Trainer:
    overrides = [f"model.kwargs={{width: {args.width}}}", f"data.batch_size={args.batch}", "train.progress=false",
                 f"train.device={args.device}", f"train.compile={str(compile_).lower()}", "train.epochs=1",
                 f"attack.steps={args.steps}"]
    cfg = load_config("cifar10/pgd_at_preact18", overrides)
    return Trainer(cfg, out, data=synthetic_bundle(args.batch * args.batches, torch.device(args.device)),
                   callbacks=[])


def floor_fn(trainer: Trainer, x: torch.Tensor, y: torch.Tensor, n_steps: int, k: int):
    """n_steps x (K input-gradient passes in the attack's BN mode + one training step), in the trainer's
    precision and memory format, on a copy of its model."""
    model = copy.deepcopy(trainer.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    prec, dev, bn_mode = trainer.precision, trainer.device, trainer.cfg.attack.bn_mode
    if trainer.cfg.train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    delta = torch.zeros_like(x)

    def run() -> None:
        for _ in range(n_steps):
            with attack_mode(model, bn_mode):
                for _ in range(k):
                    d = delta.detach().requires_grad_(True)
                    with autocast(prec, dev):
                        out = model(x + d)
                    torch.autograd.grad(F.cross_entropy(out.float(), y), d)
            model.train()
            with autocast(prec, dev):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def plain_fn(x: torch.Tensor, y: torch.Tensor, n_steps: int, k: int, width: int, eps: float, alpha: float):
    """The plain fp32 PGD-AT loop (Rice et al.'s train_cifar.py): train-mode BN throughout, NCHW, the attack's
    ``loss.backward()`` also fills every parameter's .grad."""
    model = preact18(x.device, width).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def run() -> None:
        for _ in range(n_steps):
            delta = (torch.rand_like(x) * 2 - 1) * eps
            delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
            for _ in range(k):
                loss = F.cross_entropy(model(x + delta), y)
                loss.backward()
                g = delta.grad.detach()
                delta.data = ((delta.data + alpha * g.sign()).clamp(-eps, eps) + x).clamp(0, 1) - x
                delta.grad.zero_()
            loss = F.cross_entropy(model((x + delta.detach()).clamp(0, 1)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=4, help="training steps per timed repeat")
    p.add_argument("--width", type=int, default=16, help="PreAct ResNet-18 width (64 = the usual)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps K")
    p.add_argument("--compile", action="store_true", help="also time the Trainer with train.compile=true")
    add_common_args(p)
    args = p.parse_args()
    if args.quick:
        # width 8: at width 4, channels_last backward crashes torch 2.13 on CPU (1x1 stride-2 conv with 4 channels)
        args.batch, args.batches, args.width, args.repeats = 16, 2, 8, 1
    dev = torch.device(args.device)
    print_header("bench_at_step: PGD-AT step vs the floor", args)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args, f"{tmp}/run")
        x, y = cifar_batch(args.batch, dev)
        n, k = args.batches, args.steps
        runs = {
            "pgdat Trainer PGD-AT step": trainer.train_epoch,
            f"floor (1 train step + {k} input-grad passes)": floor_fn(trainer, x, y, n, k),
            "plain fp32 AT loop": plain_fn(x, y, n, k, args.width, 8 / 255, 2 / 255),
        }
        if args.compile:
            t0 = time.perf_counter()
            compiled = make_trainer(args, f"{tmp}/compiled", compile_=True)
            compiled.train_epoch()  # compilation happens here
            sync(dev)
            print(f"train.compile: first epoch (compilation + {n} steps) took {time.perf_counter() - t0:.1f} s wall")
            runs["pgdat Trainer PGD-AT step, train.compile"] = compiled.train_epoch
        times = timeit_many(runs, dev, repeats=args.repeats, clock=args.clock)
    per_step = {name: t / n for name, t in times.items()}
    pg = per_step["pgdat Trainer PGD-AT step"]
    floor = per_step[f"floor (1 train step + {k} input-grad passes)"]
    plain = per_step["plain fp32 AT loop"]
    print(f"PreAct ResNet-18 width {args.width}, batch {args.batch} of {data_source()}, PGD-{k} Linf 8/255 "
          f"(bn_mode {trainer.cfg.attack.bn_mode}), precision {trainer.precision}, channels_last "
          f"{trainer.cfg.train.channels_last}; {n} steps per repeat")
    print(f"{'':<52}{'s/step':>9}{'/ floor':>9}{'vs plain':>10}")
    for name, t in per_step.items():
        print(f"{name:<52}{t:>9.3f}{t / floor:>8.2f}x{plain / t:>9.2f}x")
    print(f"pgdat step / floor = {pg / floor:.3f} (target <= 1.05); plain fp32 loop / pgdat step = {plain / pg:.2f}x "
          f"(target >= 2)")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
