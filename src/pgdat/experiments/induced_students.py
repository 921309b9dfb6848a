"""The IDE measurement of the AT-induced distribution (Tian & Mao): train a fresh student on the induced training
set of each AT checkpoint. It trains, so it sits above the Trainer; the measures are in :mod:`pgdat.analysis.induced`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from pgdat.analysis.induced import local_dispersion, perturb_split, student_config
from pgdat.analysis.overfitting import read_history
from pgdat.config import Config, config_from_dict
from pgdat.data.bundle import DataBundle, as_unit_float
from pgdat.errors import PgdatError


def analyze_run(run: Path, epochs: list[int], out: Path, **kw) -> list[dict]:
    """One row per epoch: robust test accuracy (from the run's log), IDE test error, local dispersion."""
    from pgdat.training.setup import prepare_data

    if not (run / "config.yaml").is_file():
        raise PgdatError(f"{run} has no config.yaml: give a run directory written by pgdat train")
    cfg = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    data = prepare_data(cfg.data, cfg.train.seed)
    hist = {m["epoch"]: m for m in read_history(run)}
    rows = []
    for e in epochs:
        ckpt = run / f"epoch_{e}.pt"
        if not ckpt.is_file():
            raise PgdatError(f"{ckpt} is missing: train with --set train.checkpoint_every=K so epoch_N.pt files exist")
        res = _one(ckpt, cfg, data, out / f"student_epoch_{e}", kw)
        rows.append({"epoch": e, "robust_test_acc": hist.get(e, {}).get("test_robust_acc"), **res})
    return rows


def _one(ckpt: Path, cfg, data, student_dir: Path, kw: dict) -> dict:
    return induced_experiment(ckpt, cfg, data, student_dir, **kw)


def induced_experiment(checkpoint: Path, run_cfg: Config, data: DataBundle, out: Path, *, student_epochs: int,
                       student_overrides: list[str], sigma: float, pairs: int, n_dispersion: int,
                       device: torch.device | str = "cpu") -> dict[str, Any]:
    """IDE test error, student train accuracy and local dispersion for one AT checkpoint."""
    from pgdat.checkpoint import load_model
    from pgdat.training import Trainer

    phi = load_model(checkpoint, device)
    train = perturb_split(phi, data.train, run_cfg.attack, seed=run_cfg.train.seed, device=device)
    test = perturb_split(phi, data.test, run_cfg.attack, seed=run_cfg.train.seed + 1, device=device)
    induced = DataBundle(info=data.info, train=train, val=None, test=test)
    cfg = student_config(run_cfg, student_epochs, student_overrides)
    student = Trainer(cfg, out, data=induced, callbacks=[])
    student.fit()
    last = student.history[-1]
    n = min(n_dispersion, len(data.test))
    x = as_unit_float(data.test.x[:n].to(device))
    gamma = local_dispersion(phi, x, data.test.y[:n].to(device), run_cfg.attack, sigma=sigma, pairs=pairs,
                             seed=run_cfg.train.seed)
    return {"induced_test_error": 1.0 - last["test_clean_acc"], "student_train_acc": last.get("train_clean_acc"),
            "local_dispersion": gamma.mean().item(), "sigma": sigma, "pairs": pairs, "n_dispersion": n,
            "clamped_to_box": True}
