"""Checkpoints: plain dicts of tensors and config written atomically, read back with ``weights_only=True``.

A model checkpoint holds at least ``{"model": state_dict, "model_config": {"name", "num_classes", "in_channels",
"mean", "std", "kwargs"}}``; the trainer adds optimizer, scheduler, RNG states, epoch and the resolved config.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgdat.errors import PgdatError

# re-exported: checkpoint writes are atomic writes
from pgdat.fileio import TEMP_FILE, DiskFullError, atomic_write_bytes, remove_stale_temps  # noqa: F401

CHECKPOINT_NAMES = ("best.pt", "last.pt")
def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Atomically save a plain dict (tensors, numbers, strings, lists, dicts) with ``torch.save``."""
    return atomic_write_bytes(path, lambda f: torch.save(payload, f))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (its ``best.pt``, else ``last.pt``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in CHECKPOINT_NAMES:
            if (p / name).is_file():
                return p / name
        raise PgdatError(f"run directory {p} has no checkpoint ({' or '.join(CHECKPOINT_NAMES)})")
    if not p.is_file():
        raise PgdatError(f"checkpoint {p} does not exist: give a .pt file or a run directory such as runs/NAME")
    return p


def _one_line_reason(e: BaseException) -> str:
    """The informative line of a (possibly multi-line, ANSI-coloured) torch.load error, so errors stay one line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(e).splitlines()]
    lines = [ln for ln in lines if ln]
    found = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else type(e).__name__)
    return found.split(" was not an allowed global")[0].removeprefix("WeightsUnpickler error: ")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``: a file that would run code when unpickled is refused."""
    p = resolve_checkpoint(path)
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise PgdatError(f"refused to load {p}: it is not a plain weights file (loading it would execute code it "
                         f"contains). Only load checkpoints you trust, re-saved as plain state_dicts. "
                         f"({_one_line_reason(e)})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise PgdatError(f"cannot read checkpoint {p}: the file is truncated or not a torch file "
                         f"({_one_line_reason(e)}); re-save it, or resume from an earlier checkpoint") from None
    if not isinstance(obj, dict):
        raise PgdatError(f"checkpoint {p} holds a {type(obj).__name__}, expected a dict of state_dicts")
    return obj


def model_config(name: str, num_classes: int, in_channels: int, mean: Any, std: Any, *,
                 input_norm: str | None = None, bn_var: str = "biased", **kwargs: Any) -> dict:
    """The recipe :func:`load_model` needs to rebuild a model. mean/std: the in-model normalisation (None:
    identity); input_norm: the ``model.input_norm`` setting that chose them, recorded for the run's record;
    bn_var: the BatchNorm variance estimator (``model.bn_var``)."""
    cfg = {"name": name, "num_classes": int(num_classes), "in_channels": int(in_channels),
           "mean": list(mean) if mean is not None else None, "std": list(std) if std is not None else None,
           "kwargs": dict(kwargs), "bn_var": bn_var}
    if input_norm is not None:
        cfg["input_norm"] = input_norm
    return cfg


def build_model(cfg: dict) -> nn.Module:
    """Create an (untrained) model from a :func:`model_config` dict."""
    from pgdat.models import create_model

    return create_model(cfg["name"], cfg["num_classes"], in_channels=cfg["in_channels"], mean=cfg["mean"],
                        std=cfg["std"], bn_var=cfg.get("bn_var", "biased"), **cfg.get("kwargs", {}))


def load_model(path: str | Path, device: str | torch.device = "cpu", *, which: str = "model") -> nn.Module:
    """Rebuild a trained model from a checkpoint file or run directory, in eval mode, on ``device``.

    which: the state_dict key to load (``model``, or ``ema`` for weight-averaged weights when the run kept them).
    """
    return model_from_checkpoint(load_checkpoint(path), device, which=which, source=resolve_checkpoint(path))


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu", *, which: str = "model",
                          source: Any = "checkpoint") -> nn.Module:
    """The model of an already loaded checkpoint dict (eval mode, on ``device``)."""
    if "model_config" not in ckpt or which not in ckpt:
        raise PgdatError(f"{source} is not a pgdat checkpoint (needs 'model_config' and '{which}')")
    model = build_model(ckpt["model_config"])
    model.load_state_dict(ckpt[which])
    return model.to(device).eval()


def check_fits_dataset(ckpt: dict[str, Any], info: Any, data: str) -> None:
    """The checkpoint's model takes the images and predicts the classes of dataset ``data`` (``info``: its
    :class:`pgdat.data.DatasetInfo`); else a PgdatError naming the dataset the run was trained on. Call it before
    loading (maybe downloading) the data. A file without a model_config is left to the loader to refuse."""
    cfg = ckpt.get("model_config")
    if not isinstance(cfg, dict):
        return
    if cfg["num_classes"] == info.num_classes and cfg["in_channels"] == info.shape[0]:
        return
    data_cfg = ckpt.get("config", {}).get("data") if isinstance(ckpt.get("config"), dict) else None
    trained = data_cfg.get("name") if isinstance(data_cfg, dict) else None
    raise PgdatError(f"the checkpoint's model takes {cfg['in_channels']}-channel images and predicts "
                     f"{cfg['num_classes']} classes, but {data} has {info.shape[0]}-channel images and "
                     f"{info.num_classes} classes: evaluate it on the dataset it was trained for"
                     + (f" (--data {trained})" if trained else ""))
