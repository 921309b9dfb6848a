"""Gradient-masking guards: models built to mask gradients trigger them; the normal tiny model does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.eval.masking import _monotonicity_guards, fired, masking_checks, random_search

EPS = 0.3
CHEAP = {"steps": 5, "queries": 100}  # ~135 forward(+backward) passes of the (64, 1, 8, 8) batch per call


class Quantized(nn.Module):
    """Rounds the input to 5 grey levels before the net: zero input gradient almost everywhere (masking)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 4) / 4)


class _FlipGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return x.clone()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return -g


class Misleading(nn.Module):
    """Identity forward, negated input gradient (obfuscated gradients): PGD walks away from the boundary."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_FlipGrad.apply(x))


class Softmaxed(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(1)


class Noisy(nn.Module):
    """Dropout that stays on in eval mode: randomised outputs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(nn.functional.dropout(x, 0.3, training=True))


def _names(findings) -> set[str]:  # noqa: ANN001
    return {f.name for f in fired(findings)}


@pytest.mark.parametrize("eps", [0.15, EPS])  # robust accuracy under PGD-10: 0.94 at 0.15 (partly robust), 0 at 0.3
def test_normal_model_triggers_no_guard(tiny_model, tiny_batch, eps):
    x, y = tiny_batch
    findings = masking_checks(tiny_model, x, y, eps=eps, **CHEAP)
    assert len(findings) == 7
    assert _names(findings) == set(), [f.message for f in fired(findings)]
    assert tiny_model.training is False


def test_quantized_model_triggers_gradient_guards(tiny_model, tiny_batch):
    x, y = tiny_batch
    findings = masking_checks(Quantized(tiny_model), x, y, eps=EPS, **CHEAP)
    names = _names(findings)
    assert {"zero_input_gradients", "black_box_beats_white_box", "huge_eps_not_broken"} <= names
    zero = next(f for f in findings if f.name == "zero_input_gradients")
    assert zero.value == 1.0 and "zero input gradient" in zero.message


def test_misleading_gradients_trigger_black_box_and_huge_eps(tiny_model, tiny_batch):
    x, y = tiny_batch
    names = _names(masking_checks(Misleading(tiny_model), x, y, eps=EPS, **CHEAP))
    assert {"black_box_beats_white_box", "huge_eps_not_broken"} <= names
    assert "zero_input_gradients" not in names


def test_softmax_and_randomised_outputs_are_reported(tiny_model, tiny_batch):
    x, y = tiny_batch
    assert "probability_outputs" in _names(masking_checks(Softmaxed(tiny_model), x, y, eps=EPS, steps=2, queries=5))
    assert "randomised_outputs" in _names(masking_checks(Noisy(tiny_model), x, y, eps=EPS, steps=2, queries=5))


def test_monotonicity_guards_fire_only_on_a_rise():
    rising = _monotonicity_guards({"pgd": 0.40, "pgd_more_steps": 0.55, "pgd_double_eps": 0.50}, tol=0.03)
    assert [f.fired for f in rising] == [True, True]
    assert "more PGD steps" in rising[0].message and "eps is doubled" in rising[1].message
    falling = _monotonicity_guards({"pgd": 0.40, "pgd_more_steps": 0.41, "pgd_double_eps": 0.10}, tol=0.03)
    assert [f.fired for f in falling] == [False, False]


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 1.5)])
def test_random_search_stays_in_ball_and_box(tiny_model, tiny_batch, norm, eps):
    x, y = tiny_batch
    x_adv = random_search(tiny_model, x, y, eps=eps, norm=norm, queries=50)
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    with torch.no_grad():
        assert tiny_model(x_adv).argmax(1).eq(y).float().mean() < tiny_model(x).argmax(1).eq(y).float().mean()


def test_bad_arguments_are_pgdat_errors(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(PgdatError, match="eps > 0"):
        masking_checks(tiny_model, x, y, eps=0.0)
    with pytest.raises(PgdatError, match=r"\[0,1\]"):
        masking_checks(tiny_model, x * 3, y, eps=EPS)


def test_cli_masking_checks_flag_prints_and_records_every_guard(tmp_path, capsys):
    import json

    from pgdat.cli.main import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--attacks", "clean", "--n", "16", "--batch-size", "16", "--eps", "0.3",
                 "--masking-checks", "--json", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("[ok]", "[MASKING?]"))]
    recorded = json.loads(out.read_text())["masking"]
    assert len(lines) == len(recorded) == 7
    assert {r["name"] for r in recorded} >= {"zero_input_gradients", "black_box_beats_white_box"}
