"""A model pgdat did not train, evaluated and claimed: advertorch's MNIST LeNet5 (``../shared/data``) loaded through
``pgdat.models.external`` (the code behind ``pgdat eval --model-file``) on the real MNIST test set, with the claim
that ``pgdat eval --claim`` writes. Not a benchmark of speed: it prints the claim's line and writes its JSON.

    python -m benchmarks.claim_third_party --n 500 --attacks clean,apgd-ce,apgd-t --claim /tmp/claim.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import SHARED
from pgdat.eval import evaluate
from pgdat.eval.claim import ClaimContext, build_claim, claim_summary
from pgdat.models.external import load_external_model
from pgdat.runinfo import run_info

MODEL_FILE = str(Path(__file__).resolve().parent / "nets" / "lenet5_mnist.py") + ":build"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(SHARED), help="folder of mnist_test.npz (default ../shared/data)")
    p.add_argument("--weights", default=None, help="default: mnist_lenet5_advtrained.pt in --shared")
    p.add_argument("--n", type=int, default=500, help="first N MNIST test images (0 = all 10,000)")
    p.add_argument("--attacks", default="clean,apgd-ce,apgd-t")
    p.add_argument("--eps", default="0.3")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--claim", required=True, help="claim JSON to write (must not exist)")
    args = p.parse_args()
    if Path(args.claim).exists():
        raise SystemExit(f"{args.claim} exists; give another file")
    t0 = time.perf_counter()
    data = np.load(Path(args.shared) / "mnist_test.npz")
    x = torch.from_numpy(data["x"]).unsqueeze(1).float().div(255)
    y = torch.from_numpy(data["y"]).long()
    test_size = int(y.numel())
    if args.n:
        x, y = x[:args.n], y[:args.n]
    weights = args.weights or str(Path(args.shared) / "mnist_lenet5_advtrained.pt")
    model, desc = load_external_model(MODEL_FILE, weights, in_channels=1)
    res = evaluate(model, x, y, attacks=args.attacks, eps=args.eps, batch_size=args.batch_size)
    ctx = ClaimContext(dataset="mnist", test_size=test_size, architecture=desc["architecture"],
                       model={k: desc[k] for k in ("model_file", "weights", "weights_sha256", "mean", "std")},
                       additional_data=False, run_info=run_info(x.device), wall_seconds=time.perf_counter() - t0)
    entry = build_claim(res, ctx)
    Path(args.claim).write_text(json.dumps(entry, indent=2))
    print({k: f"{100 * v:.2f}%" for k, v in res.accuracy.items()}, {k: f"{v:.0f}s" for k, v in res.seconds.items()})
    print(claim_summary(entry))
    print(f"wrote {args.claim}")


if __name__ == "__main__":
    main()
