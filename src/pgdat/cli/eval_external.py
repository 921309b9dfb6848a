"""``pgdat eval`` options for models pgdat did not train (``--model-file``, ``--weights``, ``--mean``, ``--std``)
and for the RobustBench-style claim (``--claim``, ``--additional-data``): their arguments, checks and handling."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from pgdat.checkpoint import atomic_write_bytes
from pgdat.errors import PgdatError
from pgdat.models.external import check_external_output
from pgdat.threat import parse_number

YES_NO = {"yes": True, "no": False}
__all__ = ["add_external_arguments", "check_external_options", "check_external_output", "external_model",
           "write_claim"]


def add_external_arguments(p: argparse.ArgumentParser, source: argparse._MutuallyExclusiveGroup) -> None:
    """Add the options to ``p``; ``--model-file`` joins ``source``, the group of --checkpoint and --model."""
    source.add_argument("--model-file", default=None, metavar="FILE.py:FUNCTION",
                        help="evaluate a model pgdat did not train: FUNCTION() in FILE.py returns the nn.Module "
                             "(images in [0,1] -> logits), e.g. nets/wrn.py:build; or the .json of a pgdat export")
    p.add_argument("--weights", default=None,
                   help="weights for --model-file: a state_dict in .pt/.pth (loaded with weights_only=True) or "
                        ".safetensors")
    p.add_argument("--mean", default=None, help="per-channel normalisation mean for --model-file, e.g. "
                   "0.4914,0.4822,0.4465 (omit when the model normalises its [0,1] input itself)")
    p.add_argument("--std", default=None, help="per-channel normalisation std for --model-file, e.g. "
                   "0.2471,0.2435,0.2616")
    p.add_argument("--claim", default=None, metavar="FILE.json",
                   help="also write a RobustBench-style claim (it calls the number AutoAttack only for the standard "
                        "AutoAttack on the full test set); an existing file is never overwritten")
    p.add_argument("--additional-data", default=None, choices=sorted(YES_NO),
                   help="for the claim: whether the model was trained with data beyond the train split (default: "
                        "no for pgdat models, unknown for --model-file)")


def _channel_values(text: str, option: str) -> list[float]:
    values = [parse_number(v, option) for v in text.split(",") if v.strip()]
    if not values:
        raise PgdatError(f"{option} needs one number per channel, e.g. {option} 0.4914,0.4822,0.4465")
    return values


def check_external_options(args: argparse.Namespace, channels: int) -> None:
    """Refuse option combinations that cannot work, before any model or data is loaded; parse --mean/--std into
    ``args.mean_values``/``args.std_values`` (None when not given)."""
    args.mean_values = args.std_values = None
    if not args.model_file:
        for option in ("weights", "mean", "std"):
            if getattr(args, option) is not None:
                raise PgdatError(f"--{option} applies to --model-file only (pgdat checkpoints carry their own weights "
                                 "and normalisation); e.g. --model-file nets/wrn.py:build --weights wrn.safetensors")
    elif args.model_file.endswith(".json"):
        given = [f"--{o}" for o in ("weights", "mean", "std") if getattr(args, o) is not None]
        if given:
            raise PgdatError(f"--model-file {args.model_file} is a pgdat export: its weights and normalisation come "
                             f"with it, so drop {', '.join(given)}")
    elif (args.mean is None) != (args.std is None):
        raise PgdatError("give both --mean and --std (one value per channel each), or neither when the model "
                         "normalises its [0,1] input itself; e.g. --mean 0.4914,0.4822,0.4465 "
                         "--std 0.2471,0.2435,0.2616")
    elif args.mean is not None:
        args.mean_values, args.std_values = _channel_values(args.mean, "--mean"), _channel_values(args.std, "--std")
        for option, values in (("--mean", args.mean_values), ("--std", args.std_values)):
            if len(values) != channels:
                raise PgdatError(f"{option} has {len(values)} value(s) but --data {args.data} has {channels}-channel "
                                 f"images; give one per channel, e.g. {option} {','.join(['0.5'] * channels)}")
        if any(not v > 0 for v in args.std_values):
            raise PgdatError(f"--std must be > 0 for every channel (got {args.std}); e.g. --std 0.2471,0.2435,0.2616")
    if args.claim is not None and Path(args.claim).exists():
        raise PgdatError(f"--claim {args.claim} already exists and is never overwritten (a claim may already be "
                         "quoted); remove it or give another file, e.g. --claim claim-2.json")


def external_model(args: argparse.Namespace, info: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The --model-file model on ``args.device`` and its description (with the dataset's num_classes and
    in_channels, as a pgdat model config has); check its logits with :func:`check_external_output` once the
    data is loaded."""
    from pgdat.models.external import load_external_model

    if args.model_file.endswith(".json"):
        return _exported_model(args, info)
    model, desc = load_external_model(args.model_file, args.weights, in_channels=info.shape[0],
                                      mean=args.mean_values, std=args.std_values, device=args.device)
    return model, {**desc, "num_classes": info.num_classes, "in_channels": info.shape[0]}


def _exported_model(args: argparse.Namespace, info: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A ``pgdat export`` (its JSON and safetensors file, SHA-256 checked) and its description."""
    from pgdat.models.export import load_exported, read_export

    desc = read_export(args.model_file)
    cfg = desc["model_config"]
    if cfg["in_channels"] != info.shape[0] or cfg["num_classes"] != info.num_classes:
        trained = (desc.get("training") or {}).get("dataset")
        raise PgdatError(f"--model-file {args.model_file}: the exported model takes {cfg['in_channels']}-channel "
                         f"images and predicts {cfg['num_classes']} classes, but --data {args.data} has "
                         f"{info.shape[0]} and {info.num_classes}" + (f"; evaluate it with --data {trained}"
                                                                       if trained else ""))
    options = ", ".join(f"{k}={v}" for k, v in sorted(cfg.get("kwargs", {}).items()))
    weights = Path(args.model_file).parent / desc["weights_file"]
    return load_exported(args.model_file, args.device), {
        **cfg, "architecture": f"{cfg['name']}({options})" if options else cfg["name"],
        "model_file": args.model_file, "weights": str(weights), "weights_sha256": desc["weights_sha256"]}


def _model_source(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    """How to get the evaluated model back: checkpoint (and its SHA-256), --model-file and weights, or fresh init."""
    if args.model_file:
        return {k: cfg[k] for k in ("model_file", "weights", "weights_sha256", "mean", "std")}
    if args.checkpoint:
        from pgdat.checkpoint import resolve_checkpoint
        from pgdat.models.external import file_sha256

        path = resolve_checkpoint(args.checkpoint)
        return {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path), "config": cfg}
    return {"fresh_init": cfg["name"], "seed": args.seed, "config": cfg}


def _architecture(args: argparse.Namespace, cfg: dict[str, Any]) -> str:
    if args.model_file:
        return cfg["architecture"]
    options = ", ".join(f"{k}={v}" for k, v in sorted(cfg.get("kwargs", {}).items()))
    return f"{cfg['name']}({options})" if options else cfg["name"]


def write_claim(args: argparse.Namespace, res: Any, cfg: dict[str, Any], run_info: dict[str, Any],
                wall_seconds: float) -> None:
    """Build the claim of ``res`` and write it to ``args.claim`` (never over an existing file); print its line."""
    from pgdat.eval.claim import ClaimContext, build_claim, claim_summary

    additional = YES_NO[args.additional_data] if args.additional_data else (None if args.model_file else False)
    ctx = ClaimContext(dataset=args.data, test_size=args.test_size, architecture=_architecture(args, cfg),
                       model=_model_source(args, cfg), additional_data=additional, run_info=run_info,
                       wall_seconds=wall_seconds, precision=args.precision)
    entry = build_claim(res, ctx)
    text = json.dumps(entry, indent=2).encode()
    path = Path(args.claim)
    if path.exists():  # appeared while the evaluation ran
        raise PgdatError(f"--claim {path} appeared during the evaluation and is not overwritten; the claim is:\n"
                         + text.decode())
    atomic_write_bytes(path, lambda f: f.write(text))
    print(f"claim: {claim_summary(entry)}")
    print(f"wrote {path}", file=sys.stderr)
