"""Checkpoints: plain dicts of tensors and config written atomically, read back with ``weights_only=True``.

A model checkpoint holds at least ``{"model": state_dict, "model_config": {"name", "num_classes", "in_channels",
"mean", "std", "kwargs"}}``; the trainer adds optimizer, scheduler, RNG states, epoch and the resolved config.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgdat.errors import PgdatError

# re-exported: checkpoint writes are atomic writes
from pgdat.fileio import TEMP_FILE, DiskFullError, atomic_write_bytes, remove_stale_temps  # noqa: F401
from pgdat.integrity import HASH_ALGORITHM, INTEGRITY_KEY, check_archive, check_structure, content_digest

CHECKPOINT_NAMES = ("best.pt", "last.pt")
RUN_CHECKPOINTS = ("best", "last", "init")  # load_model(run_dir, which=...): the model of RUN/{which}.pt
WEIGHT_KEYS = ("model", "ema")  # state_dicts a checkpoint may hold
def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Atomically save a plain dict (tensors, numbers, strings, lists, dicts) with ``torch.save``, stamped with the
    SHA-256 of its content (:func:`pgdat.integrity.content_digest`) that :func:`load_checkpoint` checks."""
    digest = content_digest(payload, f"checkpoint {path}")
    stamped = {k: v for k, v in payload.items() if k != INTEGRITY_KEY}
    stamped[INTEGRITY_KEY] = {"algorithm": HASH_ALGORITHM, "digest": digest}
    return atomic_write_bytes(path, lambda f: torch.save(stamped, f))


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
    found = next((ln for ln in lines if "Unsupported" in ln), lines[0] if lines else type(e).__name__)
    return found.split(" was not an allowed global")[0].removeprefix("WeightsUnpickler error: ")


def _torch_load(p: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, every failure a one-line PgdatError naming ``p``."""
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _one_line_reason(e)
        if "Unsupported global" not in str(e):  # a damaged pickle, not one that names code to run
            raise PgdatError(f"corrupt checkpoint {p}: its structure record does not unpickle ({reason}); resume "
                             "from an earlier checkpoint or copy the file again") from None
        raise PgdatError(f"refused to load {p}: it is not a plain weights file (loading it would execute code it "
                         f"contains). Only load checkpoints you trust, re-saved as plain state_dicts. "
                         f"({reason})") from None
    except MemoryError:
        raise
    except (RuntimeError, EOFError, OSError) as e:
        raise PgdatError(f"cannot read checkpoint {p}: the file is truncated or not a torch file "
                         f"({_one_line_reason(e)}); re-save it, or resume from an earlier checkpoint") from None
    except Exception as e:  # noqa: BLE001 - any other failure to parse an untrusted file is a damaged file
        raise PgdatError(f"corrupt checkpoint {p}: {type(e).__name__} while reading it ({_one_line_reason(e)}); "
                         "resume from an earlier checkpoint or copy the file again") from None


def _verify(obj: dict[str, Any], p: Path) -> None:
    """Check and remove the content hash; a checkpoint saved before hashes existed loads with a warning."""
    stamp = obj.pop(INTEGRITY_KEY, None)
    if stamp is None:
        check_structure(obj, f"checkpoint {p}")
        warnings.warn(f"checkpoint {p} carries no content hash (saved before pgdat stamped checkpoints with one): it "
                      "loads, but damage to its bytes cannot be detected; re-save it to add one", stacklevel=3)
        return
    if not isinstance(stamp, dict) or stamp.get("algorithm") != HASH_ALGORITHM or not isinstance(
            stamp.get("digest"), str):
        raise PgdatError(f"corrupt checkpoint {p}: its '{INTEGRITY_KEY}' record is malformed (got {stamp!r:.80}, "
                         f"expected {{'algorithm': '{HASH_ALGORITHM}', 'digest': '<sha256 hex>'}})")
    if content_digest(obj, f"checkpoint {p}") != stamp["digest"]:
        raise PgdatError(f"corrupt checkpoint {p}: its content does not match the SHA-256 recorded when it was saved "
                         "(bytes changed on disk or in a copy); resume from an earlier checkpoint or copy it again")


def _to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor of a loaded structure to ``device``, dicts and lists in place (keeps state_dict metadata)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _to_device(v, device)
    elif isinstance(obj, list):
        obj[:] = [_to_device(v, device) for v in obj]
    elif isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_to_device(v, device) for v in obj)
    return obj


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``: a file that would run code when unpickled is refused.

    Before anything is allocated the zip records and the pickle are checked against the bounds of
    :mod:`pgdat.integrity`; after loading on the CPU the content hash is checked (a mismatch is a "corrupt
    checkpoint" PgdatError naming the file) and removed, then tensors move to ``map_location``.
    """
    p = resolve_checkpoint(path)
    check_archive(p)
    obj = _torch_load(p)
    if not isinstance(obj, dict):
        raise PgdatError(f"checkpoint {p} holds a {type(obj).__name__}, expected a dict of state_dicts")
    _verify(obj, p)
    device = torch.device(map_location)
    return obj if device.type == "cpu" else _to_device(obj, device)


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

    which: the weights to load: ``model`` (the checkpoint's own), ``ema`` (weight-averaged, when the run kept them),
    or for a run directory ``best``, ``last``, ``init`` (the model of ``best.pt``, ``last.pt``, ``init.pt``).
    """
    if which in RUN_CHECKPOINTS:
        run = Path(path).expanduser()
        if not run.is_dir():
            raise PgdatError(f"load_model(which={which!r}) takes a run directory (it loads {which}.pt there); {run} "
                             f"is not one: give runs/NAME, or which='model' for the file itself")
        path, which = run / f"{which}.pt", "model"
    elif which not in WEIGHT_KEYS:
        raise PgdatError(f"load_model: unknown which={which!r}; valid: {', '.join((*WEIGHT_KEYS, *RUN_CHECKPOINTS))} "
                         "(e.g. load_model('runs/default', which='best'))")
    return model_from_checkpoint(load_checkpoint(path), device, which=which, source=resolve_checkpoint(path))


def check_model_config(cfg: Any, source: Any = "checkpoint") -> dict:
    """PgdatError naming ``source`` and the field unless ``cfg`` has the shape :func:`model_config` writes."""
    def bad(field: str, want: str) -> PgdatError:
        got = cfg.get(field) if isinstance(cfg, dict) else cfg
        return PgdatError(f"{source}: model_config{'.' + field if field else ''} must be {want} (got {got!r:.80})")

    if not isinstance(cfg, dict):
        raise bad("", "a mapping like {'name': 'small_cnn', 'num_classes': 10, 'in_channels': 1, ...}")
    if not isinstance(cfg.get("name"), str):
        raise bad("name", "a model name such as 'small_cnn'")
    for field in ("num_classes", "in_channels"):
        v = cfg.get(field)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1_000_000:
            raise bad(field, "an integer in [1, 1000000], e.g. 10")
    for field in ("mean", "std"):
        v = cfg.get(field)
        if v is not None and (not isinstance(v, list) or len(v) != cfg["in_channels"] or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in v)):
            raise bad(field, f"null or a list of {cfg['in_channels']} numbers (one per channel), e.g. [0.5]")
    kwargs = cfg.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise bad("kwargs", "a mapping of architecture options such as {'width': 16}")
    if not isinstance(cfg.get("bn_var", "biased"), str):
        raise bad("bn_var", "'biased' or 'unbiased'")
    return cfg


def _check_weights_fit(cfg: dict, state: Any, which: str, source: Any) -> None:
    """The ``which`` state_dict has the tensors (names, shapes) of the model ``cfg`` describes; checked on a model
    built on the meta device, so a model_config asking for a huge model allocates nothing."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PgdatError(f"{source}: '{which}' must be a state_dict (parameter name -> tensor)")
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    except PgdatError as e:
        raise PgdatError(f"{source}: model_config does not describe a model: {e}") from None
    except (TypeError, ValueError, RuntimeError) as e:
        reason = _one_line_reason(e)
        raise PgdatError(f"{source}: model_config {cfg!r:.200} does not build a model ({reason})") from None
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != shapes:
        diff = sorted(set(got.items()) ^ set(shapes.items()))[:3]
        raise PgdatError(f"{source}: the '{which}' weights do not fit the model its model_config describes "
                         f"(differing entries, first 3: {diff}); the file is damaged or mixes two models")


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu", *, which: str = "model",
                          source: Any = "checkpoint") -> nn.Module:
    """The model of an already loaded checkpoint dict (eval mode, on ``device``); a malformed model_config or
    weights that do not fit it are a PgdatError naming ``source`` and the field."""
    if "model_config" not in ckpt or which not in ckpt:
        raise PgdatError(f"{source} is not a pgdat checkpoint (needs 'model_config' and '{which}')")
    cfg = check_model_config(ckpt["model_config"], source)
    _check_weights_fit(cfg, ckpt[which], which, source)
    model = build_model(cfg)
    model.load_state_dict(ckpt[which])
    return model.to(device).eval()


def check_fits_dataset(ckpt: dict[str, Any], info: Any, data: str, source: Any = "checkpoint") -> None:
    """The checkpoint's model takes the images and predicts the classes of dataset ``data`` (``info``: its
    :class:`pgdat.data.DatasetInfo`); else a PgdatError naming the dataset the run was trained on. Call it before
    loading (maybe downloading) the data. A file without a model_config is left to the loader to refuse; a malformed
    one is a PgdatError naming ``source``."""
    cfg = ckpt.get("model_config")
    if cfg is None:
        return
    check_model_config(cfg, source)
    if cfg["num_classes"] == info.num_classes and cfg["in_channels"] == info.shape[0]:
        return
    data_cfg = ckpt.get("config", {}).get("data") if isinstance(ckpt.get("config"), dict) else None
    trained = data_cfg.get("name") if isinstance(data_cfg, dict) else None
    raise PgdatError(f"the checkpoint's model takes {cfg['in_channels']}-channel images and predicts "
                     f"{cfg['num_classes']} classes, but {data} has {info.shape[0]}-channel images and "
                     f"{info.num_classes} classes: evaluate it on the dataset it was trained for"
                     + (f" (--data {trained})" if trained else ""))
