"""attack.bn_mode=train_frozen_stats (reading R2 of the NTK-AT notes): batch statistics during the attack, running
statistics untouched."""

from __future__ import annotations

import pytest
import torch

from pgdat.attacks import BN_MODES, attack_mode, pgd
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.models.batchnorm import convert_bn
from pgdat.training.validate import validate_config


def _stats(model):
    bn = model.bn
    return bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()


@pytest.mark.parametrize("variant", ["biased", "unbiased"])
def test_frozen_stats_attack_equals_train_mode_attack_without_touching_running_stats(tiny_model, tiny_batch,
                                                                                     variant):
    convert_bn(tiny_model, variant)
    x, y = tiny_batch
    before = _stats(tiny_model)
    kw = {"eps": 0.1, "step_size": 0.025, "steps": 3}
    frozen = pgd(tiny_model, x, y, bn_mode="train_frozen_stats", generator=torch.Generator().manual_seed(0), **kw)
    for a, b in zip(before, _stats(tiny_model), strict=True):
        assert torch.equal(a, b)
    train = pgd(tiny_model, x, y, bn_mode="train", generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(frozen, train)  # the running statistics never enter a train-mode forward pass
    after = _stats(tiny_model)
    assert not torch.equal(before[0], after[0]) and int(after[2]) == int(before[2]) + 3  # train mode did update


def test_frozen_stats_forward_equals_train_forward_and_flags_are_restored(tiny_model, tiny_batch):
    x, _ = tiny_batch
    tiny_model.train()
    tiny_model.bn.eval()  # a mixed-mode model must come back exactly as it was
    with attack_mode(tiny_model, "train_frozen_stats"), torch.no_grad():
        assert tiny_model.bn.training and not tiny_model.bn.track_running_stats
        frozen = tiny_model(x)
    assert not tiny_model.bn.training and tiny_model.bn.track_running_stats and tiny_model.training
    before = _stats(tiny_model)
    with attack_mode(tiny_model, "train"), torch.no_grad():
        train = tiny_model(x)
    torch.testing.assert_close(frozen, train, rtol=0, atol=0)
    with attack_mode(tiny_model, "eval"), torch.no_grad():
        assert not torch.allclose(tiny_model(x), train)  # running statistics differ from the batch's
    assert not torch.equal(before[1], _stats(tiny_model)[1])


def test_bn_mode_names_in_config_and_attack():
    assert set(BN_MODES) == {"eval", "train", "train_frozen_stats"}
    validate_config(load_config("default", ["attack.bn_mode=train_frozen_stats"]))
    with pytest.raises(PgdatError, match="attack.bn_mode: unknown bn_mode 'frozen'; valid bn_modes: eval, train, "
                                         "train_frozen_stats"):
        validate_config(load_config("default", ["attack.bn_mode=frozen"]))
    with pytest.raises(PgdatError, match="unknown bn_mode 'frozen'"):
        with attack_mode(torch.nn.Linear(2, 2), "frozen"):
            pass
