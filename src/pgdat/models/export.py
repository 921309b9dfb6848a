"""A pgdat model as ``NAME.safetensors`` plus ``NAME.json``: weights and model config that load without pickle.

The JSON says everything a reader needs without pgdat's checkpoint loader: the architecture and its options
(``model_config``, as :func:`pgdat.checkpoint.model_config` writes it), the input convention (images (B, C, H, W)
in [0,1]; normalisation is inside the model, as the ``normalize.mean``/``normalize.std`` tensors), the weights
file's SHA-256, and where the weights came from (checkpoint, epoch, training data, method, threat model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.models.external import file_sha256

FORMAT = "pgdat-export/1"
INPUT = ("images (B, C, H, W), float, in [0,1]; the per-channel normalisation is inside the model "
         "(tensors normalize.mean and normalize.std); the other tensors are under net.")


def safetensors_bytes(state: dict[str, torch.Tensor], config: dict[str, Any]) -> bytes:
    """``state`` serialised as safetensors (CPU, contiguous, unshared copies), ``config`` in its metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return save(tensors, metadata={"format": "pt", "pgdat_model_config": json.dumps(config)})


def _training_summary(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """Dataset, method and threat model of the run that trained the checkpoint (None when it has no config)."""
    cfg = ckpt.get("config")
    if not isinstance(cfg, dict):
        return None
    section = {k: cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("data", "method", "attack")}
    return {"dataset": section["data"].get("name"), "method": section["method"].get("name"),
            "norm": section["attack"].get("norm"), "eps": section["attack"].get("eps")}


def export_description(ckpt: dict[str, Any], which: str, source: Path, weights: Path,
                       run_info: dict[str, Any]) -> dict[str, Any]:
    """The JSON written beside ``weights`` (already written): config, input convention, provenance."""
    return {"format": FORMAT, "weights_file": weights.name, "weights_sha256": file_sha256(weights),
            "model_config": ckpt["model_config"], "input": INPUT,
            "source": {"checkpoint": str(source), "checkpoint_sha256": file_sha256(source), "weights": which,
                       "epoch": ckpt.get("epoch")},
            "training": _training_summary(ckpt), "pgdat_version": run_info.get("pgdat"),
            "git_sha": run_info.get("git_sha"), "torch": run_info.get("torch")}


def check_exportable(ckpt: dict[str, Any], which: str, source: Path) -> None:
    """The checkpoint holds a model config and the ``which`` state_dict (``model`` or ``ema``)."""
    if "model_config" not in ckpt:
        raise PgdatError(f"{source} is not a pgdat checkpoint (it has no 'model_config'); pgdat export RUN takes a "
                         "run directory or its best.pt/last.pt")
    if which not in ckpt:
        hint = " (the run kept no weight average: set optim.ema > 0 to train one)" if which == "ema" else ""
        raise PgdatError(f"--which {which}: {source} has no '{which}' weights{hint}; e.g. --which model")


def read_export(json_path: str | Path) -> dict[str, Any]:
    """The description an export wrote (its JSON), checked to be one; PgdatError naming the file otherwise."""
    path = Path(json_path)
    if not path.is_file():
        raise PgdatError(f"{path} does not exist; give the .json that pgdat export wrote, e.g. "
                         "runs/NAME/export/best.json")
    try:
        desc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise PgdatError(f"{path} is not JSON; give the .json that pgdat export wrote") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        found = desc.get("format") if isinstance(desc, dict) else type(desc).__name__
        raise PgdatError(f"{path} is not a pgdat export (format {found!r}, expected {FORMAT!r})")
    return desc


def load_exported(json_path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild an exported model from its JSON and safetensors file (no pickle involved), in eval mode.

    The weights' SHA-256 must match the JSON's; the model maps (B, C, H, W) images in [0,1] to logits.
    """
    from safetensors.torch import load_file

    from pgdat.checkpoint import build_model

    path = Path(json_path)
    desc = read_export(path)
    weights = path.parent / desc["weights_file"]
    if not weights.is_file():
        raise PgdatError(f"{weights}, named in {path}, does not exist: keep the export's two files together")
    if file_sha256(weights) != desc["weights_sha256"]:
        raise PgdatError(f"{weights} does not match the SHA-256 in {path}: the weights were changed or replaced")
    model = build_model(desc["model_config"])
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()
