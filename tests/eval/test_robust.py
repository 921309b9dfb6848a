"""Robust evaluation: cascade, same-subset accuracies, mode handling, sanity checks."""

import warnings

import pytest
import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.eval import evaluate, sanity_checks


def test_cascade_accuracies_are_monotone_and_flags_nested(tiny_model, tiny_batch):
    x, y = tiny_batch
    res = evaluate(tiny_model, x, y, attacks="clean,fgsm,pgd-10,cw-10,pgd-5x3", eps=0.25, batch_size=20)
    accs = list(res.accuracy.values())
    assert list(res.accuracy) == ["clean", "fgsm", "pgd-10", "cw-10", "pgd-5x3"]
    assert accs[0] > 0.9 and accs[-1] < accs[0]
    assert all(a >= b for a, b in zip(accs, accs[1:], strict=False))
    flags = list(res.flags.values())
    for before, after in zip(flags, flags[1:], strict=False):
        assert not (after & ~before).any(), "a point became robust again later in the cascade"
    assert res.robust_accuracy == accs[-1] and res.n == 64


def test_cascade_equals_worst_case_of_separate_runs(tiny_model, tiny_batch):
    x, y = tiny_batch
    both = evaluate(tiny_model, x, y, attacks="pgd-10", eps=0.2, seed=0)
    alone = evaluate(tiny_model, x, y, attacks="pgd-10", eps=0.2, seed=0)
    assert torch.equal(both.robust, alone.robust)  # seeded: repeatable
    fgsm_only = evaluate(tiny_model, x, y, attacks="fgsm", eps=0.2)
    cascade = evaluate(tiny_model, x, y, attacks="fgsm,pgd-10", eps=0.2)
    assert torch.equal(cascade.flags["fgsm"], fgsm_only.robust)
    assert cascade.robust_accuracy <= min(fgsm_only.robust_accuracy, alone.robust_accuracy) + 1e-9


def test_eps_zero_gives_clean_accuracy(tiny_model, tiny_batch):
    x, y = tiny_batch
    res = evaluate(tiny_model, x, y, attacks="clean,pgd-10,fgsm", eps=0.0)
    assert res.accuracy["pgd-10"] == res.accuracy["clean"] == res.accuracy["fgsm"]


def test_train_mode_model_is_evaluated_in_eval_mode_and_restored(tiny_model, tiny_batch):
    x, y = tiny_batch
    ref = evaluate(tiny_model, x, y, attacks="pgd-5", eps=0.2)
    tiny_model.train()
    running = tiny_model.bn.running_mean.clone()
    with pytest.warns(UserWarning, match="train mode"):
        res = evaluate(tiny_model, x, y, attacks="pgd-5", eps=0.2)
    assert tiny_model.training and tiny_model.bn.training
    assert torch.equal(tiny_model.bn.running_mean, running)
    assert res.accuracy == ref.accuracy


def test_uint8_images_accepted(tiny_model, tiny_batch):
    x, y = tiny_batch
    x8 = (x * 255).round().to(torch.uint8)
    res = evaluate(tiny_model, x8, y, attacks="clean", eps=0.1)
    assert res.accuracy["clean"] > 0.9


def test_probability_outputs_warn_and_logits_do_not(tiny_model, tiny_batch):
    x, y = tiny_batch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(tiny_model, x, y, attacks="clean", eps=0.1)
    softmaxed = nn.Sequential(tiny_model, nn.Softmax(dim=1)).eval()
    with pytest.warns(UserWarning, match="probabilities"):
        res = evaluate(softmaxed, x, y, attacks="clean", eps=0.1)
    assert any("probabilities" in w for w in res.warnings)


def test_randomised_model_warns(tiny_model, tiny_batch):
    x, y = tiny_batch

    class Noisy(nn.Module):
        def forward(self, z):
            return tiny_model(z + 0.05 * torch.randn_like(z))

    with pytest.warns(UserWarning, match="randomised"):
        evaluate(Noisy().eval(), x, y, attacks="clean", eps=0.1)


def test_bad_specs_raise_clear_errors(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(PgdatError, match="valid attacks"):
        evaluate(tiny_model, x, y, attacks="pgd-20,deepfool", eps=0.1)
    with pytest.raises(PgdatError, match="takes no step count"):
        evaluate(tiny_model, x, y, attacks="fgsm-3", eps=0.1)
    with pytest.raises(PgdatError, match="duplicates"):
        evaluate(tiny_model, x, y, attacks="pgd-5,pgd-5", eps=0.1)
    with pytest.raises(PgdatError, match="batch_size"):
        evaluate(tiny_model, x, y, attacks="pgd-5", eps=0.1, batch_size=0)


def test_sanity_checks_pass_on_normal_model(tiny_model, tiny_batch):
    x, y = tiny_batch
    results = {c.name: c for c in sanity_checks(tiny_model, x, y, eps=0.1)}
    assert all(c.passed for c in results.values()), [c.message for c in results.values() if not c.passed]


def test_sanity_checks_catch_gradient_masking(tiny_model, tiny_batch):
    x, y = tiny_batch

    class Masked(nn.Module):
        """Quantises the input with a straight step: zero input gradients everywhere."""

        def forward(self, z):
            return tiny_model(torch.round(z * 4) / 4) * 1000

    results = {c.name: c for c in sanity_checks(Masked(), x, y, eps=0.1)}
    assert not results["nonzero_input_gradients"].passed
    assert not results["huge_eps_breaks_model"].passed
    assert "masked" in results["huge_eps_breaks_model"].message


def test_apgd_ce_from_reference_autoattack(tiny_model, tiny_batch):
    x, y = tiny_batch
    res = evaluate(tiny_model, x[:32], y[:32], attacks="clean,apgd-ce", eps=0.25)
    pgd_res = evaluate(tiny_model, x[:32], y[:32], attacks="clean,pgd-10", eps=0.25)
    assert res.accuracy["apgd-ce"] < res.accuracy["clean"]
    assert res.accuracy["apgd-ce"] <= pgd_res.accuracy["pgd-10"] + 0.1


@pytest.mark.slow
def test_standard_autoattack_runs_linf_and_l2(tiny_model, tiny_batch):
    x, y = tiny_batch
    for norm, eps in (("linf", 0.3), ("l2", 1.5)):
        res = evaluate(tiny_model, x[:16], y[:16], attacks="clean,autoattack", eps=eps, norm=norm)
        assert list(res.accuracy) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]  # one step per component
        assert res.robust_accuracy < res.accuracy["clean"]
