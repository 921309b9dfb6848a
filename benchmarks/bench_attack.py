"""Robust-evaluation speed: pgdat's PGD-10 (evaluate() cascade and pgdat.attacks.pgd) against a plain fp32 PGD loop
(and torchattacks when installed), with the robust accuracy of each next to its time.

    python benchmarks/bench_attack.py [--n 512] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks.common import machine, mnist_adv_model, timeit
from pgdat.attacks import pgd
from pgdat.eval import evaluate
from pgdat.precision import resolve_precision


def plain_pgd(model, x, y, eps, alpha, steps, gen):
    """The loop users write (and torchattacks runs): fp32, full batch, autograd.grad w.r.t. the input."""
    delta = ((torch.rand(x.shape, generator=gen, device=gen.device) * 2 - 1) * eps).to(x.device)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x + delta), y), delta)
        delta = ((delta.detach() + alpha * g.sign()).clamp(-eps, eps) + x).clamp(0, 1) - x
    return (x + delta).detach()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return model(x).argmax(1).eq(y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    dev = torch.device(args.device)
    loaded = mnist_adv_model(dev)
    if loaded is None:
        raise SystemExit("needs ../shared/data/mnist_lenet5_advtrained.pt and mnist_test.npz")
    model, x, y = loaded
    x, y = x[:args.n], y[:args.n]
    eps, alpha, steps = 0.3, 0.03, 10
    gen = torch.Generator(device=dev)
    fast_prec = resolve_precision("auto", dev)
    cl = model.to(memory_format=torch.channels_last)
    rows = []

    def add(name, fn):
        t = timeit(fn, dev, repeats=args.repeats)
        rows.append((name, t, fn()))

    add("plain fp32 loop", lambda: accuracy(model, plain_pgd(model, x, y, eps, alpha, steps, gen.manual_seed(0)), y))
    add("pgdat.attacks.pgd fp32", lambda: accuracy(model, pgd(model, x, y, eps=eps, step_size=alpha, steps=steps,
                                                               generator=gen.manual_seed(0)), y))
    add(f"pgdat.eval.evaluate pgd-10 ({fast_prec}, channels_last)",
        lambda: evaluate(cl, x, y, attacks="pgd-10", eps=eps, step_size=alpha, batch_size=args.n,
                         precision=fast_prec, checks=False).robust_accuracy)
    try:
        import torchattacks

        atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        add("torchattacks.PGD", lambda: accuracy(model, atk(x, y), y))
    except ImportError:
        pass
    base = rows[0][1]
    print(f"machine: {machine()}; advertorch PGD-trained LeNet5 on {args.n} MNIST test images, PGD-10 eps 0.3")
    print(f"{'attack':<48}{'seconds':>9}{'speed-up':>10}{'robust acc':>12}")
    for name, t, acc in rows:
        print(f"{name:<48}{t:>9.3f}{base / t:>9.2f}x{100 * acc:>11.2f}%")


if __name__ == "__main__":
    main()
