"""Sharded evaluation under torchrun: 2 gloo ranks on CPU give the one-process result, point by point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from pgdat.eval.shard import Shard

SCRIPT = r'''
import json, sys
import torch
import torch.distributed as dist
from torch import nn
from pgdat.eval import evaluate

dist.init_process_group("gloo")
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
x = torch.rand(21, 1, 8, 8, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    y = model(x).argmax(1)
y[::5] = (y[::5] + 1) % 10  # some points wrong from the start
opts = dict(attacks="clean,fgsm", eps=0.05, batch_size=4, checks=False)
sharded = evaluate(model, x, y, distributed=True, state_path=sys.argv[1], **opts)
if dist.get_rank() == 0:
    single = evaluate(model, x, y, **opts)
    out = {k: [sharded.flags[k].tolist(), single.flags[k].tolist()] for k in single.flags}
    out["n"] = [sharded.n, single.n]
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
dist.destroy_process_group()
'''


def test_two_gloo_ranks_give_the_one_process_result(tmp_path: Path):
    script = tmp_path / "shard_eval.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(port), str(script), str(tmp_path / "state"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res.pop("n") == [21, 21]
    for k, (sharded, single) in res.items():
        assert sharded == single, k
    assert 0 < sum(res["fgsm"][1]) < sum(res["clean"][1]) < 21  # fgsm breaks some points, not all
    assert not list(tmp_path.glob("state*"))  # each rank's state file removed at the end


def test_gather_restores_the_original_order_for_uneven_shards():
    full = torch.arange(7)
    parts = [Shard(r, 3).take(full) for r in range(3)]
    assert [p.tolist() for p in parts] == [[0, 3, 6], [1, 4], [2, 5]]
