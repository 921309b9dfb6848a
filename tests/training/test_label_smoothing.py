"""optim.label_smoothing: one helper (methods.smoothing.label_ce) smooths the methods' label CE; a method that
never calls it fails at the first step instead of silently training unsmoothed."""

from __future__ import annotations

import pytest
import torch

from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.methods import METHODS, StepContext
from pgdat.methods.smoothing import label_ce, label_smoothing
from pgdat.training import Trainer
from pgdat.training.validate import validate_config


def smoothed_ce_by_hand(logits: torch.Tensor, y: torch.Tensor, s: float) -> torch.Tensor:
    logp = torch.log_softmax(logits.double(), dim=1)
    return -((1 - s) * logp.gather(1, y[:, None])[:, 0] + s * logp.mean(1)).mean()


def test_label_ce_matches_the_smoothed_targets_by_hand():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g)
    assert label_ce(logits, y).item() == pytest.approx(smoothed_ce_by_hand(logits, y, 0.0).item(), rel=1e-5)
    with label_smoothing(0.1) as state:
        value = label_ce(logits, y).item()
    assert state.applied
    assert value == pytest.approx(smoothed_ce_by_hand(logits, y, 0.1).item(), rel=1e-5)
    assert label_ce(logits, y).item() != pytest.approx(value)  # outside the block: plain CE again


@pytest.mark.parametrize("method", ["trades", "pgd_at"])
def test_methods_smooth_their_label_term(method, tiny_model, tiny_batch):
    from pgdat.config.schema import AttackConfig

    x, y = tiny_batch
    ctx = StepContext(attack=AttackConfig(eps=0.1, step_size=0.05, steps=2), attack_model=tiny_model,
                      generator=torch.Generator().manual_seed(0))
    with label_smoothing(0.2):
        out = METHODS.get(method)(tiny_model, x, y, ctx)
    with torch.no_grad():
        logits = out["logits_clean"] if method == "trades" else out["logits_adv"]
        want = smoothed_ce_by_hand(logits, y, 0.2).item()
    got = out["loss_natural"] if method == "trades" else out["loss"]
    assert got.item() == pytest.approx(want, rel=1e-5)


@pytest.mark.slow
def test_config_range_and_a_method_without_label_ce_is_refused(tmp_path, tiny_overrides):
    with pytest.raises(PgdatError, match=r"optim\.label_smoothing: must be a finite number in \[0, 1\)"):
        validate_config(load_config("default", ["optim.label_smoothing=1.0"]))
    cfg = load_config("default", [*tiny_overrides, "method.name=mart", "optim.label_smoothing=0.1"])
    trainer = Trainer(cfg, tmp_path / "run", callbacks=[])
    with pytest.raises(PgdatError, match="method 'mart' does not apply optim.label_smoothing"):
        trainer.fit()
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing was trained or saved under the wrong loss
