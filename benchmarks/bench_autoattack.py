"""Standard AutoAttack on a trained model: the reference package run the plain way against pgdat's cascade of the
same reference components (``pgdat.eval.evaluate(..., attacks="clean,autoattack")``), on the same points, back to
back in one process, with the time and robust accuracy of each.

Part 1: standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square; Linf eps 0.3, seed 0) on the first --n test images of
the embedded default (mnist5k) with the model of --run (best.pt of a ``pgdat train`` run). Reference:
``AutoAttack(model, version="standard").run_standard_evaluation(x, y, batch_size=250)``. pgdat: --precision
(auto: bf16 where the hardware has it natively, else fp32; every success re-checked in fp32), --batch-size.
Part 2 (run first): the default recipe's final evaluation (its ``eval.final_attacks``, ``eval.batch_size``, seed)
on the same points, next to what the reference package's APGD-CE + APGD-T (standard settings, run the plain way)
leaves (target: within 1 point, never above).

    python -m benchmarks.bench_autoattack [--run /tmp/baseline/runs/default] [--n 1000] [--quick]

--quick: a freshly initialised small_cnn on 16 images (every point breaks early): a smoke run, not for figures.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

import torch

from benchmarks.common import add_common_args, load_average, print_header, sync
from pgdat.checkpoint import load_model
from pgdat.config import load_config
from pgdat.data import load_dataset
from pgdat.data.bundle import as_unit_float
from pgdat.eval import evaluate
from pgdat.models import create_model


class _Collect(logging.Handler):
    """Keeps the reference's 'robust accuracy after X: p% (total time T s)' lines: attack -> fraction in ``after``,
    attack -> seconds spent in that attack alone (differences of the running totals) in ``seconds``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.after: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._total = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        m = re.match(r"robust accuracy after (\S+): ([\d.]+)%(?: \(total time ([\d.]+) s\))?", record.getMessage())
        if m:
            self.after[m[1].lower()] = float(m[2]) / 100
            if m[3] is not None:
                self.seconds[m[1].lower()], self._total = float(m[3]) - self._total, float(m[3])


def per_attack(seconds: dict[str, float]) -> str:
    """``apgd-ce 50.1 s, apgd-t 120.3 s, ...``: where an evaluation's time went."""
    return ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())


def model_and_points(args: argparse.Namespace, device: torch.device):
    """(model, x (n, 1, 28, 28) in [0,1], y (n,), description) of the default run, or a fresh model for --quick."""
    bundle = load_dataset("mnist5k")
    x, y = as_unit_float(bundle.test.x[:args.n]).to(device), bundle.test.y[:args.n].to(device)
    if args.quick:
        torch.manual_seed(0)
        return create_model("small_cnn", 10, in_channels=1).to(device).eval(), x, y, "fresh small_cnn (quick)"
    path = Path(args.run) / "best.pt"
    return load_model(path, device).eval(), x, y, str(path)


def reference(model, x, y, eps: float, seed: int, batch_size: int, attacks: list[str] | None = None
              ) -> tuple[float, float, dict[str, float]]:
    """(seconds, robust accuracy, accuracy after each attack) of the reference package run the plain way:
    version='standard', or only its components ``attacks`` (with the standard settings)."""
    from pyautoattack import AutoAttack

    collect = _Collect()
    logger = logging.getLogger("auto-attack")
    logger.addHandler(collect)
    logger.setLevel(logging.DEBUG)
    try:
        t0 = time.perf_counter()
        adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, device=x.device)
        adversary.attacks_to_run = attacks or adversary.attacks_to_run
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        sync(x.device)
        seconds = time.perf_counter() - t0
    finally:
        logger.removeHandler(collect)
    with torch.no_grad():
        robust = model(x_adv).argmax(1).eq(y).double().mean().item()
    print(f"reference seconds per attack: {per_attack(collect.seconds)}", flush=True)
    return seconds, robust, collect.after


def pgdat_run(model, x, y, eps: float, seed: int, batch_size: int, precision: str):
    """(seconds, EvalResult) of pgdat's cascade of the standard AutoAttack components."""
    t0 = time.perf_counter()
    res = evaluate(model, x, y, attacks="clean,autoattack", eps=eps, seed=seed, batch_size=batch_size,
                   precision=precision, checks=False)
    sync(x.device)
    return time.perf_counter() - t0, res


def default_final(model, x, y) -> tuple[str, float, float]:
    """(attacks, seconds, robust accuracy) of the default recipe's final evaluation as the trainer runs it."""
    cfg = load_config(None)
    t0 = time.perf_counter()
    res = evaluate(model, x, y, attacks=cfg.eval.final_attacks, eps=cfg.attack.eps, norm=cfg.attack.norm,
                   batch_size=cfg.eval.final_batch_size, step_size=cfg.eval.step_size, seed=cfg.train.seed,
                   on_oom="halve")
    return cfg.eval.final_attacks, time.perf_counter() - t0, res.robust_accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--run", default="/tmp/baseline/runs/default", help="run directory with best.pt")
    p.add_argument("--n", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--batch-size", type=int, default=250, help="pgdat's batch size (the reference runs at 250)")
    p.add_argument("--precision", default="auto", help="pgdat's attack precision (auto, fp32, bf16, fp16)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="pgdat's model in channels_last for part 1 (as `pgdat eval --channels-last`; default on)")
    p.add_argument("--no-default-final", action="store_true", help="skip part 2")
    p.add_argument("--pgdat-only", action="store_true",
                   help="part 1 without the reference run (compare with a reference run printed earlier on the same "
                        "machine)")
    p.add_argument("--no-autoattack", action="store_true", help="skip part 1 (standard AutoAttack)")
    args = p.parse_args()
    if args.quick:
        args.n, args.no_default_final = 16, True
    dev, eps, seed = torch.device(args.device), 0.3, 0
    print_header("bench_autoattack: standard AutoAttack, reference package vs pgdat cascade", args)
    model, x, y, source = model_and_points(args, dev)
    print(f"model {source}; {args.n} mnist5k test images; Linf eps {eps}; seed {seed}", flush=True)
    if not args.no_default_final:  # part 2 first: it is the cheaper one
        t_ct, acc_ct, _ = reference(model, x, y, eps, seed, 250, ["apgd-ce", "apgd-t"])
        attacks, t_fin, acc_fin = default_final(model, x, y)
        print(f"part 2: reference APGD-CE + APGD-T (plain, standard settings, batch 250): {t_ct:.1f} s, robust "
              f"accuracy {100 * acc_ct:.2f}%; default recipe final evaluation ({attacks}): {t_fin:.1f} s, robust "
              f"accuracy {100 * acc_fin:.2f}% (difference {100 * (acc_fin - acc_ct):+.2f} points; target within 1, "
              "never above)", flush=True)
    if args.no_autoattack:
        return
    if args.pgdat_only:
        t_ref, acc_ref, after = float("nan"), float("nan"), {}
    else:
        t_ref, acc_ref, after = reference(model, x, y, eps, seed, 250)
    print(f"part 1: reference pyautoattack (plain, batch 250): {t_ref:8.1f} s  robust accuracy {100 * acc_ref:6.2f}%"
          f"  after each: {', '.join(f'{k} {100 * v:.2f}%' for k, v in after.items())}", flush=True)
    pg_model = model.to(memory_format=torch.channels_last) if args.channels_last else model
    t_pg, res = pgdat_run(pg_model, x, y, eps, seed, args.batch_size, args.precision)
    fmt = "channels_last" if args.channels_last else "contiguous"
    print(f"part 1: pgdat cascade (batch {res.batch_size}, {args.precision}, {fmt}): {t_pg:8.1f} s  robust accuracy "
          f"{100 * res.robust_accuracy:6.2f}%  after each: "
          f"{', '.join(f'{k} {100 * v:.2f}%' for k, v in res.accuracy.items())}")
    print(f"pgdat seconds per attack: {per_attack(res.seconds)}")
    print(f"speed-up {t_ref / t_pg:.2f}x (target >= 3x); robust accuracy difference "
          f"{100 * (res.robust_accuracy - acc_ref):+.2f} points (target within 0.5); pgdat wall time "
          f"{t_pg / 60:.1f} min (target < 10)", flush=True)
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
