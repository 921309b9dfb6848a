"""stop_on_success: fooled examples are frozen; in eval mode they also leave the batch (same result, less work)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from pgdat.attacks import pgd
from tests.conftest import make_tiny_data


@functools.cache
def _trained_mlp() -> nn.Module:
    """A float64 MLP without BatchNorm or dropout (train and eval mode compute the same function), trained to high
    clean accuracy on the tiny data."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4)).double()
    x, y = make_tiny_data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x.double()), y).backward()
        opt.step()
    return model


def _mlp() -> nn.Module:
    return copy.deepcopy(_trained_mlp())


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.23, 0.06), ("l2", 1.5, 0.4)])
@pytest.mark.parametrize("targeted", [False, True])
def test_dropping_fooled_examples_matches_masking(tiny_batch, norm, eps, alpha, targeted):
    x, y = tiny_batch
    x = x.double()
    model = _mlp()
    target = (y + 1) % 4 if targeted else y
    kw = dict(eps=eps, step_size=alpha, steps=8, norm=norm, targeted=targeted, stop_on_success=True)
    # bn_mode="train" takes the masked path (examples kept in the batch), "eval" the one that drops fooled examples
    masked = pgd(model, x, target, bn_mode="train", generator=torch.Generator().manual_seed(3), **kw)
    dropped = pgd(model, x, target, bn_mode="eval", generator=torch.Generator().manual_seed(3), **kw)
    assert torch.allclose(masked, dropped, atol=1e-6, rtol=0)
    with torch.no_grad():
        pred = model(dropped).argmax(1)
    fooled = pred.eq(target) if targeted else pred.ne(target)
    assert 0 < int(fooled.sum()) < len(y), "the check needs some fooled and some robust examples"


def test_later_steps_only_see_examples_not_yet_fooled(tiny_batch):
    x, y = tiny_batch
    model = _mlp().float()
    sizes: list[int] = []  # batch size of every forward pass of the attack
    hook = model.register_forward_hook(lambda m, inp, out: sizes.append(inp[0].shape[0]))
    x_adv = pgd(model, x, y, eps=0.23, step_size=0.06, steps=8, stop_on_success=True,
                generator=torch.Generator().manual_seed(0))
    hook.remove()
    with torch.no_grad():
        still_correct = int(model(x_adv).argmax(1).eq(y).sum())
    assert sizes[0] == len(y) and len(sizes) <= 8
    assert all(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
    assert still_correct <= sizes[-1] < len(y)  # fooled examples left the batch; the robust ones stayed


def _bf16_near_tie_model() -> nn.Module:
    """Linear (B, 1, 2, 2) -> (B, 2): at x = 0.5 class 1 wins by 1e-3, below bf16's resolution at 0.5 (2^-8), so
    under bf16 autocast both logits round to 0.5, argmax says class 0, and the example looks fooled; fp32 keeps it
    correct. Raising x[0] and lowering x[1] does fool it (margin 0.1 * (x0 - x1) - 1e-3)."""
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.3, 0.2, 0.25, 0.25], [0.2, 0.3, 0.25, 0.25]]))
        lin.bias.copy_(torch.tensor([0.0, 1e-3]))
    return nn.Sequential(nn.Flatten(), lin).eval()


def test_bf16_near_tie_does_not_freeze_an_example_fp32_still_classifies_correctly():
    model = _bf16_near_tie_model()
    x, y = torch.full((4, 1, 2, 2), 0.5), torch.ones(4, dtype=torch.long)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).argmax(1).eq(0).all(), "the check needs bf16 to call the clean point fooled"
    assert model(x).argmax(1).eq(y).all()
    kw = dict(eps=0.1, step_size=0.025, steps=10, random_start=False, precision="bf16")
    full = pgd(model, x, y, **kw)
    stopped = pgd(model, x, y, stop_on_success=True, **kw)
    with torch.no_grad():
        assert model(full).argmax(1).ne(y).all()
        assert model(stopped).argmax(1).ne(y).all(), "stop_on_success froze an example fp32 classifies correctly"

    from pgdat.eval import evaluate  # the cascade counts robustness in fp32
    res = evaluate(model, x, y, attacks="clean,pgd-10", eps=0.1, precision="bf16", checks=False)
    assert res.accuracy == {"clean": 1.0, "pgd-10": 0.0}
