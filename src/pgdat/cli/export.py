"""``pgdat export RUN --format safetensors``: a run's weights as safetensors plus a JSON of the model config, for
others to load without pgdat's checkpoint (pickle) loader. Never writes over an existing file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgdat.cli.commands import register_command
from pgdat.errors import PgdatError

FORMATS = ("safetensors",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory (uses best.pt, else last.pt) or a checkpoint file")
    p.add_argument("--format", default="safetensors", choices=FORMATS, help="export format (default safetensors)")
    p.add_argument("--which", default="model", choices=("model", "ema"),
                   help="the trained weights (model, default) or their moving average (ema, when the run kept one)")
    p.add_argument("--out", default=None,
                   help="folder for NAME.safetensors and NAME.json (default: RUN/export); existing files are never "
                        "overwritten")


def _targets(args: argparse.Namespace, source: Path) -> tuple[Path, Path]:
    """(weights, json) paths: ``<out>/<checkpoint stem>[-ema].{safetensors,json}``; both must not exist yet."""
    out = Path(args.out) if args.out else source.parent / "export"
    stem = source.stem + ("-ema" if args.which == "ema" else "")
    weights, desc = out / f"{stem}.{args.format}", out / f"{stem}.json"
    for p in (weights, desc):
        if p.exists():
            raise PgdatError(f"{p} already exists and is never overwritten; remove it or give another folder, e.g. "
                             f"--out {out.parent / (out.name + '-2')}")
    return weights, desc


@register_command("export", "write a run's weights as safetensors plus a JSON of the model config", add_arguments)
def run(args: argparse.Namespace) -> int:
    from pgdat.checkpoint import atomic_write_bytes, load_checkpoint, resolve_checkpoint
    from pgdat.models.export import check_exportable, export_description, safetensors_bytes
    from pgdat.runinfo import run_info

    source = resolve_checkpoint(args.run)
    ckpt = load_checkpoint(source)
    check_exportable(ckpt, args.which, source)
    weights, desc_path = _targets(args, source)
    data = safetensors_bytes(ckpt[args.which], ckpt["model_config"])
    atomic_write_bytes(weights, lambda f: f.write(data))
    desc = export_description(ckpt, args.which, source, weights, run_info())
    text = json.dumps(desc, indent=2).encode()
    atomic_write_bytes(desc_path, lambda f: f.write(text))
    print(f"wrote {weights} ({len(data) // 1024} KiB, sha256 {desc['weights_sha256'][:12]}...) and {desc_path}")
    print(f"load it without pgdat: safetensors.torch.load_file('{weights}') and the model_config in {desc_path.name}; "
          f"or evaluate it: pgdat.models.export.load_exported('{desc_path}')")
    return 0
