"""``pgdat eval``: robust accuracy of a checkpoint (or a freshly initialised model) on a dataset's test split."""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from pgdat.attacks.autoattack import REFERENCE_BATCH
from pgdat.checkpoint import (
    atomic_write_bytes,
    check_fits_dataset,
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint,
)
from pgdat.cli.commands import register_command
from pgdat.cli.eval_external import (
    add_external_arguments,
    check_external_options,
    check_external_output,
    external_model,
    write_claim,
)
from pgdat.config.loader import MAX_SEED
from pgdat.errors import PgdatError
from pgdat.eval import evaluate, sanity_checks
from pgdat.eval.labels import cascade_label
from pgdat.eval.progress import PrintProgress
from pgdat.memory import CLI_EVAL_BATCH
from pgdat.models.memory_format import MIN_CPU_CHANNELS, channels_last_ok
from pgdat.rundir import guard_output
from pgdat.runinfo import run_info
from pgdat.threat import PIXEL_SCALES, parse_eps


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="checkpoint file or run directory (uses best.pt, else last.pt)")
    src.add_argument("--model", help="evaluate a freshly initialised model of this architecture (e.g. small_cnn)")
    add_external_arguments(p, src)
    p.add_argument("--data", default="mnist5k", help="dataset name (default: mnist5k, the embedded default)")
    p.add_argument("--data-root", default=None, help="where dataset files live (default ~/.cache/pgdat/data)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing dataset files")
    p.add_argument("--attacks", default="clean,pgd-20", help="comma-separated cascade, e.g. clean,pgd-20,autoattack")
    p.add_argument("--eps", default="0.3", help="radius in pixel units of [0,1] images: 8/255 or 0.031 (default 0.3)")
    p.add_argument("--eps-scale", type=float, default=1.0, choices=PIXEL_SCALES, metavar="{1,255}",
                   help="units of --eps and --step-size: 1 = the [0,1] image range (default), 255 = 0-255 pixel "
                        "levels (then --eps 8 means 8/255)")
    p.add_argument("--norm", default="linf", choices=["linf", "l2"], help="threat model norm (default linf)")
    p.add_argument("--step-size", default=None, help="PGD/CW step size (default 2.5*eps/steps)")
    p.add_argument("--n", "--n-images", dest="n", type=int, default=1000,  # torchrun's parser takes --n as its own
                   help="evaluate the first N test images (default 1000; 0 = all); under torchrun write --n-images")
    p.add_argument("--batch-size", type=int, default=REFERENCE_BATCH,
                   help=f"images per attack batch (default {REFERENCE_BATCH}, the reference AutoAttack's: its "
                        "components draw random starts per batch, so only its batches reproduce its plain run; halved "
                        "with a warning on out of memory)")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (and of --model's init)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda or cuda:N (default cuda when a GPU is visible, else cpu)")
    p.add_argument("--precision", default="fp32", help="autocast for attack passes: fp32, bf16, fp16, auto")
    p.add_argument("--channels-last", action="store_true",
                   help="run the model in channels_last (faster convolutions with --precision bf16/fp16/auto on GPUs "
                        "and AMX CPUs; logits round differently, so results may differ from a contiguous run by the "
                        "last bits)")
    p.add_argument("--sanity", action="store_true", help="also run the eps=0 / huge-eps / zero-gradient checks")
    p.add_argument("--masking-checks", action="store_true",
                   help="also run the gradient-masking guards (zero gradients, steps/eps monotonicity, black box)")
    p.add_argument("--json", dest="json_out", default=None, help="write results as JSON to this file")
    p.add_argument("--state", default=None,
                   help="resume file (default: next to --json, JSON.state): rewritten after every attacked batch, so "
                        "a killed evaluation rerun with the same options goes on where it stopped; removed at the end")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress lines on stderr (default: one line per attacked batch: points left, robust "
                        "accuracy so far, s/batch, ETA)")


def _model_and_data(args: argparse.Namespace):
    from pgdat.checkpoint import build_model, model_config
    from pgdat.data import dataset_info, load_dataset
    from pgdat.data.bundle import as_unit_float

    info = dataset_info(args.data)
    check_external_options(args, info.shape[0])  # before loading any model or data
    if args.checkpoint:
        ckpt, source = load_checkpoint(args.checkpoint), resolve_checkpoint(args.checkpoint)
        check_fits_dataset(ckpt, info, args.data, source)  # before building the model and loading (downloading) data
        model = model_from_checkpoint(ckpt, args.device, source=source)
        cfg = ckpt["model_config"]
    elif args.model_file:
        model, cfg = external_model(args, info)
    else:
        torch.manual_seed(args.seed)
        cfg = model_config(args.model or "small_cnn", info.num_classes, info.shape[0], info.mean, info.std)
        model = build_model(cfg).to(args.device).eval()
    bundle = load_dataset(args.data, root=args.data_root, download=not args.no_download)
    x, y = bundle.test.x, bundle.test.y
    args.test_size = int(y.numel())  # the whole test split, for --claim
    if args.n:
        x, y = x[:args.n], y[:args.n]
    x, y = as_unit_float(x.to(args.device)), y.to(args.device)
    if args.model_file:
        check_external_output(model, x[:2], info.num_classes, args.data)
    return model, x, y, cfg


def _join_process_group(args: argparse.Namespace) -> bool:
    """Join the torchrun process group (WORLD_SIZE > 1; gloo on CPU, NCCL on CUDA, each rank on GPU LOCAL_RANK);
    True on the rank that reports (rank 0, or the only process)."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.device(args.device).type == "cuda"
        if cuda:
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return not dist.is_initialized() or dist.get_rank() == 0


def _check_options(args: argparse.Namespace) -> tuple[float, float | None]:
    """--device names a usable device; --eps > 0 when an attack is asked for; --step-size in (0, eps]."""
    try:
        dev = torch.device(args.device)
    except RuntimeError:
        raise PgdatError(f"--device '{args.device}' is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PgdatError("--device cuda but no CUDA GPU is visible; use --device cpu")
    if args.n < 0:
        raise PgdatError(f"--n must be >= 0 (got {args.n})")
    if not 0 <= args.seed <= MAX_SEED:
        raise PgdatError(f"--seed must be an integer in [0, {MAX_SEED}] (got {args.seed}), e.g. --seed 0")
    eps = parse_eps(args.eps, "--eps", norm=args.norm, scale=args.eps_scale)
    step_size = (parse_eps(args.step_size, "--step-size", norm=args.norm, scale=args.eps_scale)
                 if args.step_size is not None else None)
    attacking = any(a.strip().lower() != "clean" for a in args.attacks.split(",") if a.strip())
    if attacking and eps <= 0:
        raise PgdatError(f"--eps must be > 0 for the attacks {args.attacks} (got {args.eps}); e.g. --eps 8/255, "
                         "or --attacks clean for clean accuracy only")
    if step_size is not None and not 0 < step_size <= eps:
        raise PgdatError(f"--step-size must be in (0, eps={eps:.4g}] (got {args.step_size}): PGD projects onto the "
                         "eps ball, so a larger step only overshoots; omit it for 2.5*eps/steps")
    return eps, step_size


def _print_masking(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace,
                   eps: float) -> list[dict]:
    """Run the gradient-masking guards on the first --batch-size points and print one line per guard."""
    from pgdat.eval.masking import masking_checks

    n = min(args.batch_size, 256)
    findings = masking_checks(model, x[:n], y[:n], eps=eps, norm=args.norm, seed=args.seed, on_oom="halve",
                              batch_option=CLI_EVAL_BATCH)
    for f in findings:
        print(f"[{'MASKING?' if f.fired else 'ok'}] {f.name}: {f.message}")
    return [f.__dict__ for f in findings]


@register_command("eval", "robust accuracy under a cascade of attacks", add_arguments)
def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    eps, step_size = _check_options(args)
    json_path = guard_output(args.json_out, "--json", "eval.json") if args.json_out else None  # never a run's file
    main_rank = _join_process_group(args)  # under torchrun: before the model is placed on this rank's device
    model, x, y, cfg = _model_and_data(args)
    if args.channels_last and x.dim() == 4:
        if channels_last_ok(model, x.device):
            model = model.to(memory_format=torch.channels_last)
        else:
            print(f"note: --channels-last ignored on {x.device}: convolutions narrower than {MIN_CPU_CHANNELS} "
                  "channels crash in channels_last on CPU (a PyTorch/oneDNN bug)", file=sys.stderr)
    # out of memory: go on at half the batch size, with a warning (also in the JSON): accuracies do not depend on
    # the batch size except through the attacks' random starts, and a long evaluation should not die at the end
    # under torchrun the points are sharded over the ranks; every rank gets the gathered result, rank 0 reports it
    state = args.state or (f"{args.json_out}.state" if args.json_out else None)
    res = evaluate(model, x, y, attacks=args.attacks, eps=eps, norm=args.norm, batch_size=args.batch_size,
                   step_size=step_size, seed=args.seed, precision=args.precision, on_oom="halve",
                   batch_option=CLI_EVAL_BATCH, progress=None if args.no_progress or not main_rank else PrintProgress(),
                   state_path=state, distributed=True)
    if not main_rank:
        return 0
    args.batch_size = res.batch_size  # the checks below use the batch size that fitted
    source = args.checkpoint or args.model_file or "fresh init"
    print(f"model {cfg['name']} ({source}), data {args.data} test, n={res.n}, "
          f"{args.norm} eps={eps:.5g} ({eps * 255:.2f}/255), seed {args.seed}")
    print(f"robust accuracy by: {cascade_label(args.attacks)} (a cascade: each attack only sees the points the "
          "previous ones left)")
    print(f"{'attack':<14}{'accuracy':>10}{'seconds':>10}")
    for name, acc in res.accuracy.items():
        print(f"{name:<14}{100 * acc:>9.2f}%{res.seconds[name]:>10.1f}")
    per_class = res.per_class(y, cfg["num_classes"])
    last = list(per_class)[-1]
    print(f"per class ({last}): " + " ".join(f"{c}:{100 * a:.1f}" for c, a in enumerate(per_class[last])))
    out = {**res.to_dict(), "robust_accuracy_by": cascade_label(args.attacks), "per_class": per_class,
           "data": args.data, "checkpoint": args.checkpoint, "model": cfg, "info": run_info(x.device)}
    if args.sanity:
        checks = sanity_checks(model, x[:args.batch_size], y[:args.batch_size], eps=eps, norm=args.norm,
                               on_oom="halve", batch_option=CLI_EVAL_BATCH)
        for c in checks:
            print(f"[{'ok' if c.passed else 'FAILED'}] {c.name}: {c.message}")
        out["sanity"] = [c.__dict__ for c in checks]
    if args.masking_checks:
        out["masking"] = _print_masking(model, x, y, args, eps)
    if json_path is not None:
        text = json.dumps(out, indent=2)
        atomic_write_bytes(json_path, lambda f: f.write(text.encode()))
        print(f"wrote {args.json_out}", file=sys.stderr)
    if args.claim:
        write_claim(args, res, cfg, out["info"], time.perf_counter() - t_start)
    return 0
