"""Long-tailed AT: LT counts, RBL (inert under sign-PGD: Finding A), TAIL reductions (Finding B), baselines."""

import pytest
import torch
import torch.nn.functional as F

from pgdat.config import AttackConfig
from pgdat.data import load_dataset
from pgdat.data.transforms import apply_transforms, long_tail_counts
from pgdat.errors import PgdatError
from pgdat.methods import StepContext, build_method
from pgdat.methods.base import craft
from pgdat.methods.long_tail import rbl_weights, tail_classes, tail_penalty


def test_long_tail_counts_match_ldam_table():
    assert long_tail_counts(5000, 10, 50) == [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100]
    assert long_tail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(long_tail_counts(5000, 10, 10)) == 20431
    assert long_tail_counts(100, 4, 10, "step") == [100, 100, 10, 10]


def test_long_tail_transform_on_the_embedded_default():
    b = load_dataset("mnist5k", val_size=500)
    lt = apply_transforms(b, [{"name": "long_tail", "ratio": 10, "n_max": 300}], seed=0)
    counts = torch.bincount(lt.train.y, minlength=10).tolist()
    assert counts == long_tail_counts(300, 10, 10)
    again = apply_transforms(b, [{"name": "long_tail", "ratio": 10, "n_max": 300}], seed=5)
    assert torch.equal(lt.train.index, again.train.index)  # selection depends on order_seed only
    assert torch.equal(lt.test.y, b.test.y) and torch.equal(lt.val.y, b.val.y)


def test_rbl_weights_first_epoch_inverse_to_counts():
    counts = torch.tensor([500.0, 100.0, 20.0])
    w = rbl_weights(counts, counts)
    assert w.sum().item() == pytest.approx(3.0)
    assert w[2] > w[1] > w[0]
    assert torch.allclose(w / w[0], counts[0] / counts, rtol=0.02)  # E_c ~ 0.63 n_c


def test_finding_a_rbl_attack_equals_ce_attack(tiny_model, tiny_batch):
    x, y = tiny_batch
    attack = AttackConfig(eps=0.1, step_size=0.025, steps=5)
    w = torch.tensor([0.1, 1.0, 5.0, 20.0])
    ctx = lambda: StepContext(attack=attack, attack_model=tiny_model, generator=torch.Generator().manual_seed(0))  # noqa: E731
    ce = craft(ctx(), x, y)
    rbl = craft(ctx(), x, y, loss=lambda z, t: w[t] * F.cross_entropy(z, t, reduction="none"))
    assert torch.equal(ce, rbl)


def test_finding_b_tail_reductions():
    torch.manual_seed(0)
    f, y = torch.randn(12, 5), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0, 3, 3, 0, 1])
    counts = torch.tensor([100.0, 50.0, 20.0, 5.0])
    tail = tail_classes(4)
    assert tail == [3]
    released = tail_penalty(f, y, counts, tail, reduction="as_released", sign="as_written")
    # per-anchor loop over the collapsed formula: (1/|T|) sum_i c_i * mean_{j,d} p_i (log p_i - log q_j)
    logq = F.log_softmax(f, 1)
    p = logq.exp()
    w = (counts.sum() / counts).sqrt()
    vals = []
    for i in range(12):
        if y[i] in tail:
            c = sum((-1.0 if y[i] == y[j] else 1.0) * (w[y[i]] + w[y[j]]) for j in range(12)) / 12
            kbar = sum((p[i] * (logq[i] - logq[j])).sum() for j in range(12)) / (12 * 5)
            vals.append(c * kbar)
    assert released.item() == pytest.approx(torch.stack(vals).mean().item(), rel=1e-5)
    pairwise = tail_penalty(f, y, counts, tail, reduction="pairwise", sign="as_written")
    assert pairwise.item() != pytest.approx(released.item(), rel=1e-3)
    assert tail_penalty(f, torch.zeros(12, dtype=torch.long), counts, tail, reduction="pairwise",
                        sign="contrastive").item() == 0.0  # no tail anchors


@pytest.mark.parametrize("name,params", [("reat", {"variant": "paper_intent"}), ("reat", {"variant": "as_released"}),
                                         ("pgd_at_bsl", {}), ("pgd_at_reweight", {})])
def test_long_tail_methods_train(tiny_model, tiny_batch, name, params):
    x, y = tiny_batch
    tiny_model.train()
    ctx = StepContext(attack=AttackConfig(eps=0.1, step_size=0.025, steps=3), attack_model=tiny_model,
                      generator=torch.Generator().manual_seed(0), class_counts=torch.tensor([300, 100, 30, 10]))
    out = build_method(name, params)(tiny_model, x, y, ctx)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in tiny_model.parameters())
    if name == "reat":
        assert ctx.state["reat_hist"].sum() == 64 and torch.equal(ctx.state["reat_prev_hist"], ctx.class_counts.float())


def test_reat_default_is_the_released_loss(tiny_model, tiny_batch):
    """GuanlinLee/REAT's loss (the paper's tables) is the default; paper_intent is an option and a different loss."""
    x, y = tiny_batch

    def loss(params: dict) -> float:
        ctx = StepContext(attack=AttackConfig(eps=0.1, step_size=0.025, steps=3), attack_model=tiny_model,
                          generator=torch.Generator().manual_seed(0), class_counts=torch.tensor([300, 100, 30, 10]))
        return float(build_method("reat", params)(tiny_model, x, y, ctx)["loss_tail"])

    assert loss({}) == loss({"variant": "as_released"}) != loss({"variant": "paper_intent"})


@pytest.mark.parametrize("params", [{"tail_reduction": "pairwise", "tail_sign": "as_written"},
                                    {"variant": "paper_intent", "tail_sign": "as_written"}])
def test_reat_refuses_a_tail_unbounded_below(params):
    with pytest.raises(PgdatError, match="unbounded below.*variant: as_released"):
        build_method("reat", params)


def test_paper_intent_tail_is_bounded_below_at_the_released_scale():
    """Issue 24: the contrastive pairwise TAIL must stay >= -margin * max(W) / D however large the features grow
    (the released loss's 1/D per-entry scale); without it the push outweighed BSL and training collapsed."""
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0, 3, 3, 0, 1])
    counts = torch.tensor([100.0, 50.0, 20.0, 5.0])
    d = 64
    bound = -1.0 * 2 * (counts.sum() / counts.min()).sqrt() / d
    for scale in (1.0, 1e2, 1e4):
        f = scale * torch.randn(12, d)
        v = tail_penalty(f, y, counts, tail_classes(4), reduction="pairwise", sign="contrastive", margin=1.0)
        assert v >= bound
