"""Robust-evaluation speed: pgdat's PGD-10 (``pgdat.attacks.pgd`` and the ``pgdat.eval.evaluate`` cascade) against a
plain fp32 PGD loop and torchattacks (when installed), with the robust accuracy of each next to its time.

Part 1 (speed): PreAct ResNet-18 at width 16, one batch of CIFAR-10-sized images, PGD-10 Linf 8/255, step 2/255.
The model is untrained, so its accuracies mean nothing; evaluate() is shown there attacking every point (the
cascade's savings depend on the model and are measured in part 2).
Part 2 (speed and accuracy on a trained model): advertorch's PGD-trained MNIST LeNet5 from ../shared/data on the
first --n-mnist test images, PGD-10 Linf 0.3, step 0.03; the fast default's robust accuracy is compared with the
fp32 reference on the same examples (target: within 0.5 percentage points).

    python -m benchmarks.bench_attack [--n 128] [--n-mnist 1000] [--device cpu|cuda] [--clock wall|cpu] [--quick]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks.common import (
    add_common_args,
    cifar_batch,
    data_source,
    load_average,
    mnist_adv_model,
    preact18,
    print_header,
    timeit_many,
)
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


def channels_last_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def contenders(model, x, y, *, eps, alpha, steps, dev, fast, bf16: bool):
    """name -> callable returning the robust accuracy (the attacks all start from seeded random points)."""
    gen = torch.Generator(device=dev)
    cl = channels_last_copy(model)
    runs = {
        "plain fp32 loop": lambda: accuracy(model, plain_pgd(model, x, y, eps, alpha, steps, gen.manual_seed(0)), y),
        "pgdat.attacks.pgd fp32": lambda: accuracy(model, pgd(model, x, y, eps=eps, step_size=alpha, steps=steps,
                                                               generator=gen.manual_seed(0)), y),
        f"pgdat.attacks.pgd {fast}, channels_last": lambda: accuracy(
            model, pgd(cl, x, y, eps=eps, step_size=alpha, steps=steps, precision=fast,
                       generator=gen.manual_seed(0)), y),
        f"pgdat.eval.evaluate pgd-10 {fast}, channels_last": lambda: evaluate(
            cl, x, y, attacks=["pgd-10"], eps=eps, step_size=alpha, batch_size=len(y), precision=fast,
            checks=False).robust_accuracy,
    }
    if bf16 and fast != "bf16":  # timed once, without warm-up (it can be very slow on CPUs without bf16)
        runs["pgdat.attacks.pgd bf16, channels_last (1 run)"] = lambda: accuracy(
            model, pgd(cl, x, y, eps=eps, step_size=alpha, steps=steps, precision="bf16",
                       generator=gen.manual_seed(0)), y)
    try:
        import torchattacks

        atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        runs["torchattacks.PGD"] = lambda: accuracy(model, atk(x, y), y)
    except ImportError:
        pass
    return runs


def report(title: str, runs: dict, dev: torch.device, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    once = {k: v for k, v in runs.items() if k.endswith("(1 run)")}
    times = timeit_many({k: v for k, v in runs.items() if k not in once}, dev, repeats=args.repeats, clock=args.clock)
    times |= timeit_many(once, dev, repeats=1, warmup=0, clock=args.clock)
    rows = {name: (times[name], fn()) for name, fn in runs.items()}
    base = rows["plain fp32 loop"][0]
    print(f"\n{title}")
    print(f"{'attack':<52}{'seconds':>9}{'speed-up':>10}{'robust acc':>12}")
    for name, (t, acc) in rows.items():
        print(f"{name:<52}{t:>9.3f}{base / t:>9.2f}x{100 * acc:>11.2f}%")
    return rows


def accuracy_check(model, x, y, dev, fast: str, bf16: bool) -> None:
    """Robust accuracy of the fast default against the fp32 reference on the same examples (both evaluate())."""
    kw = dict(attacks=["clean", "pgd-10"], eps=0.3, step_size=0.03, batch_size=500, seed=0, checks=False)
    ref = evaluate(model, x, y, precision="fp32", **kw)
    cl = channels_last_copy(model)
    checks = {f"fast default ({fast}, channels_last)": evaluate(cl, x, y, precision=fast, **kw)}
    if bf16 and fast != "bf16":
        checks["bf16 autocast, channels_last"] = evaluate(cl, x, y, precision="bf16", **kw)
    print(f"\naccuracy check on the same {len(y)} MNIST test images (evaluate clean,pgd-10; target |diff| <= 0.5 pp):")
    print(f"  fp32 reference: clean {100 * ref.accuracy['clean']:.2f}%, robust {100 * ref.robust_accuracy:.2f}%")
    for name, res in checks.items():
        diff = 100 * (res.robust_accuracy - ref.robust_accuracy)
        verdict = "OK" if abs(diff) <= 0.5 else "MISSED"
        print(f"  {name}: robust {100 * res.robust_accuracy:.2f}% ({diff:+.2f} pp, {verdict}); points judged "
              f"differently: {int((res.robust ^ ref.robust).sum())}; pgd-10 took {res.seconds['pgd-10']:.2f} s wall "
              f"(fp32 reference {ref.seconds['pgd-10']:.2f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=128, help="CIFAR-sized batch for part 1")
    p.add_argument("--n-mnist", type=int, default=1000, help="MNIST test images for part 2")
    p.add_argument("--width", type=int, default=16, help="PreAct ResNet-18 width (64 = the usual)")
    p.add_argument("--no-bf16", action="store_true", help="skip the explicit bf16 rows (slow on CPUs without bf16)")
    add_common_args(p)
    args = p.parse_args()
    if args.quick:
        args.n, args.n_mnist, args.width, args.repeats = 8, 32, 8, 1
    dev = torch.device(args.device)
    fast = resolve_precision("auto", dev)
    bf16 = not args.no_bf16
    print_header("bench_attack: PGD-10 robust evaluation", args)
    print(f"fast default: precision auto -> {fast} on {dev.type}, channels_last")

    x, y = cifar_batch(args.n, dev)
    model = preact18(dev, args.width).eval()
    report(f"part 1: PreAct ResNet-18 width {args.width} (untrained), {args.n} {data_source()}, Linf 8/255, step 2/255",
           contenders(model, x, y, eps=8 / 255, alpha=2 / 255, steps=10, dev=dev, fast=fast, bf16=bf16), dev, args)

    loaded = mnist_adv_model(dev)
    if loaded is None:
        print("\npart 2 skipped: needs ../shared/data/mnist_lenet5_advtrained.pt and mnist_test.npz")
    else:
        model, xm, ym = loaded
        xm, ym = xm[:args.n_mnist], ym[:args.n_mnist]
        report(f"part 2: advertorch PGD-trained LeNet5, {len(ym)} MNIST test images, Linf 0.3, step 0.03",
               contenders(model, xm, ym, eps=0.3, alpha=0.03, steps=10, dev=dev, fast=fast, bf16=False), dev, args)
        accuracy_check(model, xm, ym, dev, fast, bf16)
    print(f"\nend: {load_average()}")


if __name__ == "__main__":
    main()
