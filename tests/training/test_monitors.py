import json

import torch

from pgdat.config import load_config
from pgdat.training import Trainer
from pgdat.training.monitors import grad_norm_sq


def test_grad_norm_sq_is_the_full_gradient_norm():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    m(torch.randn(5, 3)).pow(2).sum().backward()
    flat = torch.cat([p.grad.flatten() for p in m.parameters()])
    assert torch.allclose(grad_norm_sq(list(m.parameters())), flat.pow(2).sum())


def test_grad_norm_monitor_logs_and_plots(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides + ["train.epochs=2", "train.callbacks=[{name: grad_norm}]"])
    Trainer(cfg, tmp_path / "r").fit()
    rows = [json.loads(s) for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[1:]]
    for r in rows:
        assert r["grad_norm_mean"] > 0 and r["grad_norm_var"] >= 0 and r["grad_norm_max"] >= r["grad_norm_mean"]
    assert (tmp_path / "r" / "grad_norm.png").stat().st_size > 1000
