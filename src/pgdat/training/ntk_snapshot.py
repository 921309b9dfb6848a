"""The ``ntk_snapshot`` callback: the empirical NTK of a fixed training probe every N epochs (functions in
:mod:`pgdat.analysis.ntk`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pgdat.analysis.ntk import _check_kind, empirical_ntk, kernel_distance, load_snapshot, spectrum, training_probe
from pgdat.errors import PgdatError
from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView


@CALLBACKS.register("ntk_snapshot")
class NTKSnapshot(Callback):
    """Every ``every`` epochs (and before training) compute the eNTK on a fixed class-balanced training probe and
    save ``RUN/ntk/epoch_E.pt`` ({kernel (if save_kernel), spectrum, probe indices, kind, bn_mode}); adds the
    metrics ``ntk_distance_to_prev``, ``ntk_velocity`` (that distance per epoch since the previous snapshot),
    ``ntk_top_eigenvalue`` and ``ntk_effective_rank`` to the epoch's log.

    adv: PGD arguments (eps, step_size, steps) to also snapshot the kernel on the probes' adversarial examples
    (crafted at each snapshot against the current model, seed 0), saved under ``kernel_adv``/``spectrum_adv``.
    """

    def __init__(self, every: int = 1, probe: int = 100, kind: str = "trace", seed: int = 0,
                 save_kernel: bool = True, adv: dict[str, Any] | None = None, bn_mode: str = "eval") -> None:
        if every < 1 or probe < 2:
            raise PgdatError(f"NTKSnapshot: every must be >= 1 and probe >= 2 (got {every}, {probe})")
        _check_kind(kind)
        self.every, self.n, self.kind, self.seed = every, probe, kind, seed
        self.save_kernel, self.adv, self.bn_mode = save_kernel, adv, bn_mode
        self.prev: torch.Tensor | None = None
        self.prev_epoch: int | None = None

    def snapshot(self, run: RunView, epoch: int) -> dict[str, Any]:
        """Compute and save the snapshot of ``run.model`` at ``epoch``; returns its record."""
        x, y, idx = training_probe(run.data.train, self.n, self.seed, run.device)
        model = run.model
        k = empirical_ntk(model, x, kind=self.kind, bn_mode=self.bn_mode)
        rec: dict[str, Any] = {"epoch": epoch, "kind": self.kind, "bn_mode": self.bn_mode, "probe_index": idx,
                               "spectrum": spectrum(k)}
        rec["distance_to_prev"] = kernel_distance(self.prev, k) if self.prev is not None else None
        rec["velocity"] = (rec["distance_to_prev"] / max(epoch - self.prev_epoch, 1)
                           if self.prev is not None and self.prev_epoch is not None else None)
        if self.save_kernel:
            rec["kernel"] = k
        if self.adv:
            from pgdat.attacks import pgd

            x_adv = pgd(model, x, y, box=run.box, generator=torch.Generator(device=x.device).manual_seed(0),
                        **self.adv)
            ka = empirical_ntk(model, x_adv, kind=self.kind, bn_mode=self.bn_mode)
            rec |= {"spectrum_adv": spectrum(ka), "clean_adv_distance": kernel_distance(k, ka)}
            if self.save_kernel:
                rec["kernel_adv"] = ka
        self.prev, self.prev_epoch = k, epoch
        if run.dist.is_main:
            from pgdat.checkpoint import save_checkpoint

            (run.out / "ntk").mkdir(parents=True, exist_ok=True)
            save_checkpoint(rec, run.out / "ntk" / f"epoch_{epoch}.pt")
        return rec

    def on_fit_start(self, run: RunView) -> None:
        if self.prev is not None:
            return
        last = run.epoch - run.epoch % self.every  # the latest snapshot epoch (a resumed run's may be earlier)
        path = run.out / "ntk" / f"epoch_{last}.pt"
        # only a resumed run (epoch > 0) reloads: a fresh run's folder may hold another run's epoch_0.pt
        reload = run.epoch > 0 and path.is_file() and self.save_kernel
        self.prev = load_snapshot(path)["kernel"].to(run.device) if reload else None
        self.prev_epoch = last if self.prev is not None else None
        if self.prev is None and last == run.epoch:
            self.snapshot(run, run.epoch)

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        if run.epoch % self.every:
            return
        rec = self.snapshot(run, run.epoch)
        metrics |= {"ntk_distance_to_prev": rec["distance_to_prev"], "ntk_velocity": rec["velocity"],
                    "ntk_top_eigenvalue": rec["spectrum"]["top_eigenvalue"],
                    "ntk_effective_rank": rec["spectrum"]["effective_rank"]}
