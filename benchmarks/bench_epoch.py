"""Epoch anatomy of the default recipe (``pgdat train`` with no options): the share of an epoch spent on data
loading, per-epoch evaluation, and checkpointing + logging, next to the training compute.

The run goes through ``Trainer.fit`` unchanged; time_train and time_eval come from its own metrics.jsonl; the
end-of-epoch work (best.pt/last.pt, metrics.jsonl, curves.png, console line) is timed by a callback that marks the
moment the epoch's metrics are complete; data loading is timed afterwards by replaying each epoch's batches
(the same seeded augmentation, no model). The one-off costs (start-up, preflight, final evaluation) are listed
apart: they do not grow with the number of epochs.

    python -m benchmarks.bench_epoch [--epochs 10] [--set KEY=VALUE ...] [--quick] [--extra 100000]

``--extra N`` trains with ``data.extra`` on an N-image file the script writes (random uint8 images of the dataset's
size, in the uncompressed .npz layout, fraction ``--extra-fraction``) and reports what mixing costs: each epoch's
batches are replayed twice, by the run's loader (real + extra) and by a real-only loader yielding as many batches of
the same size; the difference (reading rows from the memory-mapped file, copying and appending them) as a share of
the epoch. The replay reads the file on the main thread, while training overlaps it with the
step (one batch ahead on a worker thread), so the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import add_common_args, load_average, now, print_header, sync
from pgdat.config import load_config
from pgdat.data import DeviceLoader, dataset_info
from pgdat.training.callbacks import Callback, ConsoleLogger, CurvePlotter, MetricsLogger
from pgdat.training.run_view import RunView
from pgdat.training.trainer import Trainer


class EpochClock(Callback):
    """Per epoch, on the chosen clock: training (``train_epoch``, wrapped by :meth:`attach`), evaluation (from its
    end to the epoch's complete metrics) and checkpoints + logging (from there to the end of the on_epoch_end
    hooks); plus the fit's phases. Must be the last callback; stops the fit after ``stop_after`` epochs."""

    def __init__(self, stop_after: int, clock: str) -> None:
        self.stop_after, self.clock = stop_after, clock
        self.marks: dict[str, float] = {}
        self.rows: list[dict[str, float]] = []

    def attach(self, trainer: Trainer) -> None:
        inner = trainer.train_epoch

        def timed_train_epoch():
            self.marks["train_start"] = now(self.clock)
            self.marks.setdefault("first_epoch", time.perf_counter())
            out = inner()
            self.marks["train_end"] = now(self.clock)
            return out

        trainer.train_epoch = timed_train_epoch

    def on_epoch_metrics(self, run: RunView, metrics: dict) -> None:
        self.marks["metrics"] = now(self.clock)
        if metrics["epoch"] >= self.stop_after and metrics["epoch"] < run.cfg.train.epochs:
            run.request_stop("benchmark: epoch budget reached")

    def on_epoch_end(self, run: RunView, metrics: dict) -> None:
        t, m = now(self.clock), self.marks
        self.rows.append({"train": m["train_end"] - m["train_start"], "eval": m["metrics"] - m["train_end"],
                          "log": t - m["metrics"], "evaluated": "val_robust_acc" in metrics})
        self.marks["last_epoch_end"] = time.perf_counter()


def data_seconds(trainer: Trainer, epochs: int, clock: str) -> list[float]:
    """Time to produce every batch of each epoch (loader only: permutation, crop/flip, uint8 -> float)."""
    out = []
    for e in range(epochs):
        t0 = now(clock)
        for x, _, _ in trainer.loader.epoch(e):
            if trainer.cfg.train.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
        sync(trainer.device)
        out.append(now(clock) - t0)
    return out


def write_extra_file(path: Path, n: int, dataset: str, chunk: int = 10_000) -> None:
    """An uncompressed .npz of ``n`` random uint8 images of ``dataset``'s size (N, H, W, C) and labels, written
    member by member in chunks (never the whole image array in memory)."""
    import zipfile

    info = dataset_info(dataset)
    c, h, w = info.shape
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("image.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, h, w, c)})
            for i in range(0, n, chunk):
                f.write(rng.integers(0, 256, (min(chunk, n - i), h, w, c), dtype=np.uint8).tobytes())
        with zf.open("label.npy", "w") as f:
            np.lib.format.write_array(f, rng.integers(0, info.num_classes, n).astype(np.int64))


def real_batches(loader: DeviceLoader, n: int):
    """``n`` batches of a real-only loader (as many epochs of it as that takes)."""
    while n > 0:
        for batch in loader:
            if n == 0:
                return
            n -= 1
            yield batch


def mixing_seconds(trainer: Trainer, epochs: int, clock: str) -> list[tuple[float, float]]:
    """Per epoch (loader time with the extra images, time of a real-only loader giving as many batches of the same
    size)."""
    ld = trainer.loader.loader
    real = DeviceLoader(trainer.data.train, ld.batch_size, device=trainer.device, drop_last=True,
                        augment=ld.augment, crop_padding=ld.crop_padding, return_index=True)
    out = []
    for e in range(epochs):
        times = []
        for batches in (trainer.loader.epoch(e), real_batches(real, len(ld))):
            t0 = now(clock)
            for x, _, _ in batches:
                if trainer.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
            sync(trainer.device)
            times.append(now(clock) - t0)
        out.append((times[0], times[1]))
    return out


def report_mixing(trainer: Trainer, rows: list[dict], clock: str, n_extra: int) -> None:
    mix = mixing_seconds(trainer, len(rows), clock)
    epoch = sum(r["train"] + r["eval"] + r["log"] for r in rows)
    cost = sum(max(0.0, a - b) for a, b in mix)
    ld = trainer.loader.loader
    print(f"data.extra: {n_extra} images (memory-mapped .npz), {ld.n_extra} extra + {ld.real_batch} real per batch;"
          f" per epoch ({len(ld)} batches): loader with extra {sum(a for a, _ in mix) / len(mix):.3f} s, real-only "
          f"loader, as many batches of {ld.batch_size}: {sum(b for _, b in mix) / len(mix):.3f} s")
    print(f"data.extra mixing = {100 * cost / epoch:.2f}% of epoch time (target <= 5%)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="default", help="recipe (default: the embedded default of `pgdat train`)")
    p.add_argument("--epochs", type=int, default=0, help="stop after this many epochs (0 = the recipe's all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--extra", type=int, default=0, metavar="N", help="train with data.extra on an N-image file the "
                   "script writes (e.g. 100000) and report the mixing cost; 0 = off")
    p.add_argument("--extra-fraction", type=float, default=0.5, help="data.extra.fraction with --extra (default 0.5)")
    add_common_args(p)
    args = p.parse_args()
    overrides = [f"train.device={args.device}", "train.progress=false", *args.set]
    if args.quick:
        overrides += ["data.n_train=256", "data.val_size=64", "eval.n_test=64", "eval.n_final=64", "attack.steps=2",
                      "eval.attack=pgd-2", "eval.final_attacks=clean,pgd-2"]
        args.epochs = args.epochs or 2
    print_header("bench_epoch: data, evaluation and logging as a share of the epoch", args)
    with tempfile.TemporaryDirectory() as tmp:
        if args.extra:
            extra_path = Path(tmp) / "extra.npz"
            write_extra_file(extra_path, args.extra, load_config(args.config, overrides).data.name)
            overrides.append(f"data.extra={{path: {extra_path}, fraction: {args.extra_fraction}}}")
        cfg = load_config(args.config, overrides)
        epochs = args.epochs or cfg.train.epochs
        t0 = time.perf_counter()
        clock = EpochClock(epochs, args.clock)
        trainer = Trainer(cfg, Path(tmp) / "run", callbacks=[MetricsLogger(), CurvePlotter(), ConsoleLogger(), clock])
        clock.attach(trainer)
        t_init = time.perf_counter() - t0
        summary = trainer.fit()
        t_total = time.perf_counter() - t0
        lines = [json.loads(s) for s in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()][1:]
        data = data_seconds(trainer, len(lines), args.clock)
        if args.extra:
            report_mixing(trainer, clock.rows, args.clock, args.extra)
    print(f"\nrecipe {args.config} ({cfg.method.name}, {cfg.model.name} on {cfg.data.name}, batch "
          f"{cfg.data.batch_size}, eval.attack {cfg.eval.attack} on val {cfg.data.val_size} + test {cfg.eval.n_test},"
          f" eval.batch_size {cfg.eval.batch_size}, eval.every {getattr(cfg.eval, 'every', 1)}), {len(lines)} "
          f"epochs, precision {trainer.precision}; seconds on the {args.clock} clock (the trainer's own wall-clock "
          f"time_train / time_eval from metrics.jsonl in brackets)")
    print(f"{'epoch':>5}{'epoch s':>9}{'train s':>9}{'data':>8}{'eval':>8}{'ckpt+log':>10}{'overhead':>10}"
          f"   [wall train s + eval s]")
    tot = dict(epoch=0.0, train=0.0, data=0.0, eval=0.0, log=0.0)
    for m, d, row in zip(lines, data, clock.rows, strict=True):
        ep = row["train"] + row["eval"] + row["log"]
        for k, v in (("epoch", ep), ("train", row["train"]), ("data", d), ("eval", row["eval"]), ("log", row["log"])):
            tot[k] += v
        print(f"{m['epoch']:>5}{ep:>9.2f}{row['train']:>9.2f}{100 * d / ep:>7.1f}%{100 * row['eval'] / ep:>7.1f}%"
              f"{100 * row['log'] / ep:>9.1f}%{100 * (d + row['eval'] + row['log']) / ep:>9.1f}%"
              f"   [{m['time_train']:.1f} + {m['time_eval']:.1f}]{'' if row['evaluated'] else ' (not evaluated)'}")
    over = tot["data"] + tot["eval"] + tot["log"]
    print(f"{'all':>5}{tot['epoch']:>9.2f}{tot['train']:>9.2f}{100 * tot['data'] / tot['epoch']:>7.1f}%"
          f"{100 * tot['eval'] / tot['epoch']:>7.1f}%{100 * tot['log'] / tot['epoch']:>9.1f}%"
          f"{100 * over / tot['epoch']:>9.1f}%")
    print(f"data + per-epoch eval + checkpoint/logging = {100 * over / tot['epoch']:.1f}% of epoch time (target <= 5%)")
    start = clock.marks["first_epoch"] - t0
    final = t_total - (clock.marks["last_epoch_end"] - t0)
    print(f"one-off (wall): set-up {t_init:.1f} s, set-up to first epoch (incl. preflight) {start:.1f} s, final "
          f"evaluation ({cfg.eval.final_attacks} on {summary.get('n', 0)} test images, best and last) {final:.1f} s; "
          f"whole run {t_total:.1f} s")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
