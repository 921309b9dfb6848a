"""The one training loop. Methods are losses; attacks, evaluation, checkpoints and logs are shared machinery.

Every epoch reseeds its random streams from (seed, epoch, rank), so a run resumed from any epoch boundary
replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgdat.attacks.specs import check_box_supported
from pgdat.checkpoint import build_model, load_checkpoint, model_config, remove_stale_temps, save_checkpoint
from pgdat.config import Config, config_from_dict, config_to_dict
from pgdat.data.bundle import DataBundle
from pgdat.errors import PgdatError
from pgdat.killhook import kill_at, kill_if_reached
from pgdat.memory import TRAIN_BATCH, free_memory, is_oom, largest_fitting, oom_error
from pgdat.methods import METHODS, StepContext, build_method
from pgdat.methods.base import ATTACK_COST
from pgdat.methods.smoothing import label_smoothing
from pgdat.models.memory_format import MIN_CPU_CHANNELS, channels_last_ok
from pgdat.models.normalize import resolve_input_norm
from pgdat.precision import autocast, resolve_precision
from pgdat.rundir import RunLock, is_run_file
from pgdat.runinfo import run_info
from pgdat.threat import BOXES, resolve_box
from pgdat.training.callback_list import build_callbacks
from pgdat.training.callbacks import Callback, ConsoleLogger, CurvePlotter, MetricsLogger
from pgdat.training.distributed import all_reduce_sum, barrier, init_distributed
from pgdat.training.evaluation import evaluate_splits, final_evaluation, preflight_evaluation
from pgdat.training.extension import extend_config, extension_record, is_extension, schedule_epochs
from pgdat.training.health import HealthCheck
from pgdat.training.optim import build_optimizer
from pgdat.training.run_view import RunProgress, RunView
from pgdat.training.schedules import lr_at
from pgdat.training.setup import (
    EMA,
    attach_extra,
    make_loader,
    prepare_data,
    resolve_device,
    set_determinism,
    stream_seed,
)
from pgdat.training.validate import config_warnings, validate_config

# keys that may differ between a run and its resumption (they do not change what is computed); train.epochs changes
# the learning-rate schedule: it changes only through an explicit extension (training/extension.py)
RESUMABLE_CHANGES = {"train.progress", "train.checkpoint_every", "data.root", "data.download"}


def flatten_config(d: dict, prefix: str = "") -> dict:
    """Nested config dict -> {"section.key": value} (option mappings ``kwargs``/``params`` kept whole)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out |= flatten_config(v, key + ".") if isinstance(v, dict) and k not in ("kwargs", "params") else {key: v}
    return out


def config_changes(saved: dict, new: dict) -> list[str]:
    """Dotted keys whose value differs between two config dicts, except :data:`RESUMABLE_CHANGES`."""
    a, b = flatten_config(saved), flatten_config(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)


def check_resumable(path: Path, saved: Config, new: Config, *, extension_ok: bool = False) -> None:
    """Resuming ``path`` under another config would mix two experiments in one run: refuse any change but
    :data:`RESUMABLE_CHANGES` and, with ``extension_ok``, an explicit extension (``train.epochs`` and
    ``train.extensions``). The CLI checks before it loads anything, the Trainer again against the checkpoint."""
    bad = config_changes(config_to_dict(saved), config_to_dict(new))
    if not bad or (extension_ok and set(bad) <= {"train.epochs", "train.extensions"}):
        return
    hint = ""
    if "train.epochs" in bad:
        extra = new.train.epochs - saved.train.epochs
        hint = (f"; train.epochs ({saved.train.epochs} -> {new.train.epochs}) sets the learning-rate "
                "schedule, so changing it would splice two schedules: to train longer, resume with "
                f"--extend-epochs {extra if extra > 0 else 'N'} (recorded in config.yaml and metrics.jsonl)")
    raise PgdatError(f"cannot resume {path} with a different config: {', '.join(bad)} changed (only "
                     f"{', '.join(sorted(RESUMABLE_CHANGES))} may change); start a new run elsewhere{hint}")


def replayed(batches: Iterable[Any], replays: int, epoch: int, n_batches: int) -> Iterator[tuple[int, float, Any]]:
    """(optimizer step in the epoch, progress in epochs after that step, batch): each batch ``replays`` times in a
    row (Free-AT's minibatch replay; 1 for every other method, which gives progress ``epoch + (i + 1) / n_batches``
    exactly as without replay)."""
    for b, batch in enumerate(batches):
        for r in range(replays):
            yield b * replays + r, epoch + (b + (r + 1) / replays) / n_batches, batch


class Trainer:
    """Trains ``cfg`` into the run directory ``out`` (``out/last.pt`` is resumed from when ``resume``).

    ``data``: an already built :class:`DataBundle` (e.g. an induced or feature-injected dataset) used instead of
    loading ``cfg.data``; its ``info`` still sizes the model. ``lock``: the caller's :class:`RunLock` of ``out``,
    held for the whole training (else the trainer holds one while it sets up and while it fits: a second process
    writing into ``out`` is refused). ``extend_epochs``: with ``resume``, train that many epochs more than the run's
    ``train.epochs`` (recorded in ``train.extensions``, see :mod:`pgdat.training.extension`).

    The constructor builds objects only (config, data, model, method, callbacks) and writes nothing; :meth:`start`
    (called by :meth:`fit`) does the run's I/O. Call it first to read a resumed run's state before ``fit()``.
    """

    def __init__(self, cfg: Config, out: str | Path, *, resume: bool = False,
                 callbacks: list[Callback] | None = None, data: DataBundle | None = None,
                 lock: RunLock | None = None, extend_epochs: int = 0) -> None:
        validate_config(cfg)  # every key checked before any data is loaded or model built
        for note in config_warnings(cfg):
            warnings.warn(note, stacklevel=2)
        if extend_epochs and not resume:
            raise PgdatError(f"--extend-epochs {extend_epochs} extends a run being resumed: add --resume RUN_DIR")
        self.cfg, self.out, self.lock = cfg, Path(out), lock
        self.device = resolve_device(cfg.train.device)
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        set_determinism(cfg.train.deterministic)
        self.precision = resolve_precision(cfg.train.precision, self.device)
        self.data = data if data is not None else prepare_data(cfg.data, cfg.train.seed)
        self.data, self.cfg = attach_extra(self.data, cfg)  # data.extra: the config now pins its sha256 and size
        cfg, extra = self.cfg, self.data.extra
        self.n_index = int(self.data.train.index.max()) + 1 + (len(extra) if extra is not None else 0)
        # attack.box auto -> unit | none from the data (unclipped injected features lie outside [0,1])
        self.attack_cfg = dataclasses.replace(cfg.attack, box=resolve_box(cfg.attack.box, self.data.info.in_unit_box))
        self.box = BOXES[self.attack_cfg.box]  # (lo, hi) or None: the image box of training and evaluation attacks
        for key, specs in (("eval.attack", cfg.eval.attack), ("eval.final_attacks", cfg.eval.final_attacks)):
            check_box_supported(specs, self.box, key)  # now, not after the training it would end
        self.class_counts = torch.bincount(self.data.train.y, minlength=self.data.info.num_classes).to(self.device)
        info = self.data.info
        mean, std = resolve_input_norm(cfg.model.input_norm, info.mean, info.std, cfg.model.norm_mean,
                                       cfg.model.norm_std)
        self.model_cfg = model_config(cfg.model.name, info.num_classes, info.shape[0], mean, std,
                                      input_norm=cfg.model.input_norm, bn_var=cfg.model.bn_var, **cfg.model.kwargs)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(self.model_cfg).to(self.device)
        self.channels_last = cfg.train.channels_last and channels_last_ok(self.model, self.device)
        if cfg.train.channels_last and not self.channels_last and self.dist.is_main:
            print(f"note: train.channels_last ignored on {self.device}: convolutions narrower than "
                  f"{MIN_CPU_CHANNELS} channels crash in channels_last on CPU (a PyTorch/oneDNN bug)", flush=True)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.method = build_method(cfg.method.name, cfg.method.params)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.ema = EMA(self.model, cfg.optim.ema) if cfg.optim.ema > 0 else None
        self.loader = make_loader(self.data, cfg, self.device, self.dist)
        self.train_model, self.attack_model = self._wrap(self.model)
        self.progress = RunProgress()  # epoch, optimizer step and stop request: read by callbacks through the view
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "selected_by": cfg.eval.select_by}
        self.method_state: dict[str, Any] = {}
        self.kill_at = kill_at()  # tests only: PGDAT_TEST_KILL_AFTER_STEP (see pgdat/killhook.py)
        self.header = {"type": "header", **run_info(self.device), "seed": cfg.train.seed, "name": cfg.name,
                       "world_size": self.dist.world, "precision": self.precision,
                       "attack_bn_mode": cfg.attack.bn_mode, "bn_var": cfg.model.bn_var,
                       "input_norm": cfg.model.input_norm, "input_mean": mean, "input_std": std}
        self.header |= {"attack_box": self.attack_cfg.box, "replays": self.method.replays}
        if extra is not None:
            self.header["data_extra"] = extra.describe()
        defaults = [MetricsLogger(), CurvePlotter(), ConsoleLogger()]
        self.callbacks = list(callbacks) if callbacks is not None else defaults  # the caller's list is not extended
        self.callbacks += build_callbacks(self._callback_specs())
        self.callbacks.append(HealthCheck())  # flags a run stuck at chance or diverging (training/health.py)
        self.resume, self.extend_epochs = resume, extend_epochs
        self.removed_temps: list[Path] = []
        self._started = False
        self.view: RunView | None = None  # what callbacks see; built by start()

    @property
    def epoch(self) -> int:
        """Epochs completed (kept in :attr:`progress`, which the callbacks' view reads)."""
        return self.progress.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.progress.epoch = value

    @property
    def stop_reason(self) -> str | None:
        """Why training ends after the current epoch (set by callbacks through their view); None: it goes on."""
        return self.progress.stop_reason

    @stop_reason.setter
    def stop_reason(self, value: str | None) -> None:
        self.progress.stop_reason = value

    def start(self) -> Trainer:
        """The run's I/O, once (``fit()`` calls it): under the run directory's lock, remove the temp files of
        interrupted writes, then load ``last.pt`` (resume, extension) or create the directory and write
        ``init.pt``; finally build the callbacks' :class:`RunView`. Returns the trainer."""
        if self._started:
            return self
        with self._owned(create=not self.resume):
            # temp files of the run's own writes that a kill interrupted (exact names, this directory only)
            self.removed_temps = remove_stale_temps(self.out, is_run_file) \
                if self.dist.is_main and self.out.is_dir() else []
            if self.resume:
                self._load(self.out / "last.pt", self.extend_epochs)
            elif self.dist.is_main:
                self.out.mkdir(parents=True, exist_ok=True)
                save_checkpoint({"model": self.model.state_dict(), "model_config": self.model_cfg,
                                 "config": config_to_dict(self.cfg)}, self.out / "init.pt")
        self.view, self._started = self._make_view(), True
        return self

    def _make_view(self) -> RunView:
        """The callbacks' view of this run (see :mod:`pgdat.training.run_view`): the run's objects, no Trainer."""
        steps_per_epoch = len(self.loader.loader) * self.method.replays
        self.progress.step = self.epoch * steps_per_epoch
        return RunView(cfg=self.cfg, out=self.out, model=self.model, attack_model=self.attack_model,
                       optimizer=self.optimizer, method=self.method, data=self.data, device=self.device,
                       precision=self.precision, channels_last=self.channels_last, dist=self.dist,
                       attack=self.attack_cfg, box=self.box, n_index=self.n_index, steps_per_epoch=steps_per_epoch,
                       history=self.history, header=self.header, state=self.method_state,
                       callbacks=tuple(self.callbacks), progress=self.progress)

    def _owned(self, create: bool = True) -> contextlib.AbstractContextManager:
        """The run directory's lock for a phase that writes it: the caller's (kept), else one held for the phase;
        only the main process writes, so only it locks."""
        if self.lock is not None or not self.dist.is_main:
            return contextlib.nullcontext()
        return RunLock(self.out).acquire(create=create)

    def _callback_specs(self) -> list[dict[str, Any]]:
        """``train.callbacks`` plus the method's default callbacks (e.g. the CO monitor) not configured already."""
        specs = [dict(s) for s in self.cfg.train.callbacks]
        names = {s.get("name") for s in specs}
        defaults = getattr(METHODS.get(self.cfg.method.name), "default_callbacks", ())
        return specs + [dict(s) for s in defaults if s["name"] not in names]

    def _wrap(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(model used for the training loss, model used to craft attacks): compiled and/or DDP-wrapped."""
        attack_model = torch.compile(model) if self.cfg.train.compile else model
        train_model = attack_model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(attack_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return train_model, attack_model

    # ----------------------------------------------------------------------------------------------- the loop
    def fit(self) -> dict[str, Any]:
        """Train the remaining epochs, then evaluate best.pt and last.pt on the test set; returns the summary."""
        self.start()
        with self._owned():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        view = self.view
        if self.dist.is_main:
            for cb in self.callbacks:
                cb.on_fit_start(view)
        if self.epoch < self.cfg.train.epochs and self.stop_reason is None:
            preflight_evaluation(self, self.attack_model)  # an eval.batch_size that does not fit fails now
        while self.epoch < self.cfg.train.epochs and self.stop_reason is None:
            t0 = time.perf_counter()
            metrics = self.train_epoch()
            t1 = time.perf_counter()
            self.model.eval()
            evaluated = self.evaluates_after(self.epoch + 1)
            if evaluated:  # eval.every: val/test every N epochs and on the last
                metrics |= evaluate_splits(self, self.attack_model, prefix="")
                if self.ema is not None:
                    metrics |= evaluate_splits(self, self.ema.module, prefix="ema_")
            self.epoch += 1
            metrics |= {"epoch": self.epoch, "time_train": t1 - t0, "time_eval": time.perf_counter() - t1}
            if ATTACK_COST in self.method_state:  # cumulative input-gradient evaluations of craft(), all processes
                metrics["attack_grad_evals"] = self.method_state[ATTACK_COST]["grad_evals"] * self.dist.world
            for cb in self.callbacks:
                cb.on_epoch_metrics(view, metrics)
            if self.stop_reason is not None:
                metrics["stop_reason"] = self.stop_reason
            self.history.append(metrics)
            self._end_epoch(metrics, evaluated)
        summary = final_evaluation(self)  # every rank: the final evaluation shards its points over the ranks
        if self.dist.is_main:
            for cb in self.callbacks:
                cb.on_fit_end(view, summary)
        barrier(self.dist)
        return summary

    def train_epoch(self) -> dict[str, Any]:
        """One pass over the training split; metrics are accumulated as tensors and synced once at the end."""
        view = self.start().view  # started already under fit(); a direct call (benchmarks) starts the run here
        cfg, dev, e = self.cfg, self.device, self.epoch
        self.model.train()
        gen = torch.Generator(device=dev).manual_seed(stream_seed(cfg.train.seed, e, self.dist.rank, "attack"))
        torch.manual_seed(stream_seed(cfg.train.seed, e, self.dist.rank, "global"))
        ctx = StepContext(attack=self.attack_cfg, attack_model=self.attack_model, generator=gen,
                          precision=self.precision, epoch=e, state=self.method_state, n_index=self.n_index,
                          num_classes=self.data.info.num_classes, class_counts=self.class_counts)
        total = schedule_epochs(cfg.train, e)  # the lr schedule's length (train.epochs unless extended later)
        stats = torch.zeros(6, device=dev)  # loss sum, n, clean correct, clean n, adv correct, adv n
        first_bad = torch.full((), -1, device=dev, dtype=torch.long)
        for cb in self.callbacks:
            cb.on_epoch_start(view)
        batches = self.loader.epoch(e)
        n_batches = len(batches)
        if cfg.train.progress and self.dist.is_main and sys.stderr.isatty():  # a bar only for a person watching: a
            from tqdm.auto import tqdm  # redirected log gets the one epoch line (with elapsed time and ETA) instead

            batches = tqdm(batches, desc=f"epoch {e + 1}/{cfg.train.epochs}", leave=False, unit="batch")
        for i, progress, (x, y, idx) in replayed(batches, self.method.replays, e, n_batches):  # i: optimizer step
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            lr = lr_at(cfg.optim, progress, total)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            ctx.progress, ctx.index, ctx.after_step = progress, idx, []
            out = self._step(x, y, ctx)  # the first step is the memory preflight: too large a batch fails here
            loss = out["loss"]
            for fn in ctx.after_step:
                fn()
            self.progress.step = step = e * n_batches * self.method.replays + i + 1
            for cb in self.callbacks:
                cb.on_step_end(view, out)
            kill_if_reached(step, self.kill_at)
            if self.ema is not None:
                self.ema.update(self.model)
            with torch.no_grad():
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), i, first_bad)
                stats[0] += loss.detach().float() * y.numel()
                stats[1] += y.numel()
                for k, key in ((2, "logits_clean"), (4, "logits_adv")):
                    if key in out:
                        stats[k] += out[key].argmax(1).eq(y).sum()
                        stats[k + 1] += y.numel()
        stats = all_reduce_sum(stats, self.dist).tolist()  # the epoch's one host sync
        if int(first_bad) >= 0:
            raise PgdatError(f"non-finite training loss at epoch {e + 1}, step {int(first_bad) + 1}: lower the "
                             f"learning rate or use precision=fp32; the last good checkpoint is {self.out / 'last.pt'}")
        acc = lambda c, n: c / n if n else None  # noqa: E731
        out = {"lr": lr, "train_loss": stats[0] / max(stats[1], 1), "train_clean_acc": acc(stats[2], stats[3]),
               "train_robust_acc": acc(stats[4], stats[5])}
        return out | ({"schedule_epochs": total} if cfg.train.extensions else {})

    def _optimise(self, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, Any]:
        """One optimisation step on a batch (x (B, C, H, W), y (B,)): the method's loss, backward, update."""
        with autocast(self.precision, self.device), label_smoothing(self.cfg.optim.label_smoothing) as smoothing:
            out = self.method(self.train_model, x, y, ctx)
        if smoothing.value > 0 and not smoothing.applied:  # a Python flag: no host sync
            raise PgdatError(f"method '{self.cfg.method.name}' does not apply optim.label_smoothing (its loss has no "
                             "label cross-entropy through pgdat.methods.smoothing.label_ce); use "
                             "optim.label_smoothing=0, or method trades or pgd_at")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)  # callbacks and clipping see the true gradient
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return out

    def _step(self, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, Any]:
        """:meth:`_optimise`, with running out of memory turned into a PgdatError naming the batch size that fits."""
        try:
            return self._optimise(x, y, ctx)
        except Exception as e:  # noqa: BLE001 - re-raised unless it is an allocator failure
            if not is_oom(e):
                raise
        raise self._oom_error(x, y, ctx)  # outside the except block: the failed step's tensors are released

    def _oom_error(self, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> PgdatError:
        """After a step ran out of memory: probe prefixes of the batch (forward and backward, no update) for the
        largest size that fits. Never retries training at another size (that would change the experiment); the
        checkpoints on disk are untouched, the in-memory model (BatchNorm statistics, method state) is not."""
        for fn in ctx.after_step:  # e.g. AWP takes its weight perturbation back
            fn()
        self.optimizer.zero_grad(set_to_none=True)
        free_memory(self.device)

        def probe(b: int) -> None:
            pctx = dataclasses.replace(ctx, index=None if ctx.index is None else ctx.index[:b], after_step=[])
            try:
                with autocast(self.precision, self.device):
                    loss = self.method(self.attack_model, x[:b], y[:b], pctx)["loss"]  # unwrapped: no collectives
                loss.backward()
            finally:
                for fn in pctx.after_step:
                    fn()
                self.optimizer.zero_grad(set_to_none=True)

        largest, _ = largest_fitting(probe, x.shape[0], self.device)
        return oom_error(self.device, TRAIN_BATCH, self.cfg.data.batch_size,
                         f"training step of method {self.cfg.method.name}", largest * self.dist.world)

    # -------------------------------------------------------------------------------------- state and files
    def evaluates_after(self, epoch: int) -> bool:
        """Whether the per-epoch evaluation runs after 1-based ``epoch``: every ``eval.every`` epochs and the last."""
        return epoch % self.cfg.eval.every == 0 or epoch >= self.cfg.train.epochs

    def _end_epoch(self, metrics: dict[str, Any], evaluated: bool = True) -> None:
        """Update the best epoch (by validation robust accuracy; only epochs that were evaluated are candidates),
        write best.pt / last.pt, run callbacks."""
        key = self.best["selected_by"]
        score = metrics.get(key) if evaluated else None
        if score is None and evaluated:  # no validation split: fall back to training robust accuracy, never test
            self.best["selected_by"] = key = "train_robust_acc" if metrics.get("train_robust_acc") is not None \
                else "train_clean_acc"
            score = metrics.get(key)
        improved = score is not None and score > self.best.get(key, -1.0)
        if improved:
            self.best = {"epoch": self.epoch, key: score, "selected_by": key}
        metrics["best_epoch"] = self.best["epoch"]
        if self.dist.is_main:
            state = self.state_dict()
            if improved:
                save_checkpoint(state, self.out / "best.pt")
            save_checkpoint(state, self.out / "last.pt")
            every = self.cfg.train.checkpoint_every
            if every and self.epoch % every == 0:
                save_checkpoint(state, self.out / f"epoch_{self.epoch}.pt")
            for cb in self.callbacks:
                cb.on_epoch_end(self.view, metrics)
        barrier(self.dist)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: a plain dict loadable with ``weights_only=True``."""
        state = {"model": self.model.state_dict(), "model_config": self.model_cfg, "config": config_to_dict(self.cfg),
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "epoch": self.epoch,
                 "history": self.history, "best": self.best, "header": self.header,
                 "method_state": {k: v for k, v in self.method_state.items() if isinstance(v, torch.Tensor | dict)}}
        if self.ema is not None:
            state["ema"] = self.ema.module.state_dict()
        return state

    def _extend(self, extra: int) -> None:
        """Train ``extra`` more epochs: the longer schedule applies from the current epoch on (recorded in
        ``train.extensions``); a final.json of the shorter run is kept as ``final.epochE.json``."""
        if self.stop_reason is not None:
            raise PgdatError(f"{self.out} stopped early at epoch {self.epoch} ({self.stop_reason}): --extend-epochs "
                             "cannot continue it; start a new run with more train.epochs instead")
        self.cfg = extend_config(self.cfg, extra, at_epoch=self.epoch)
        final = self.out / "final.json"
        if self.dist.is_main and final.exists():
            k, dest = 1, self.out / f"final.epoch{self.epoch}.json"
            while dest.exists():
                k += 1
                dest = self.out / f"final.epoch{self.epoch}-{k}.json"
            final.rename(dest)

    def _load(self, path: Path, extend_epochs: int = 0) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        if "config" in ckpt:
            saved = config_from_dict(ckpt["config"])
            check_resumable(path, saved, self.cfg, extension_ok=is_extension(saved, self.cfg, ckpt["epoch"]))
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and "ema" in ckpt:
            self.ema.module.load_state_dict(ckpt["ema"])
        self.epoch, self.history, self.best = ckpt["epoch"], ckpt["history"], ckpt["best"]
        self.method_state.update(ckpt.get("method_state", {}))
        self.header = ckpt.get("header", self.header) | {"resumed_at_epoch": self.epoch}
        self.stop_reason = self.history[-1].get("stop_reason") if self.history else None
        if not all(torch.isfinite(p.detach()).all() for p in self.model.parameters()):
            raise PgdatError(f"{path} holds non-finite weights; resume from an earlier checkpoint")
        if extend_epochs:
            self._extend(extend_epochs)
        if self.cfg.train.extensions:
            self.header["extensions"] = extension_record(self.cfg.train)
