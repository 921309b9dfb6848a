import pytest
import torch

from pgdat.data import load_dataset
from pgdat.data.transforms import apply_transforms
from pgdat.errors import PgdatError


@pytest.fixture(scope="module")
def bundle():
    return load_dataset("mnist5k", val_size=500)


def test_random_labels_seeded_and_true_labels_kept(bundle):
    a = apply_transforms(bundle, [{"name": "label_noise", "rate": 1.0}], seed=3)
    b = apply_transforms(bundle, [{"name": "label_noise", "rate": 1.0}], seed=3)
    c = apply_transforms(bundle, [{"name": "label_noise", "rate": 1.0}], seed=4)
    assert torch.equal(a.train.y, b.train.y) and not torch.equal(a.train.y, c.train.y)
    assert torch.equal(a.train.y_true, bundle.train.y)
    agree = (a.train.y == bundle.train.y).float().mean().item()
    assert abs(agree - 0.1) < 0.03  # labels redrawn from all 10 classes, the true one included
    assert torch.equal(a.test.y, bundle.test.y) and torch.equal(a.val.y, bundle.val.y)
    assert torch.bincount(a.train.y, minlength=10).min() > 250  # roughly uniform


def test_partial_noise_rate_and_zero(bundle):
    half = apply_transforms(bundle, [{"name": "label_noise", "rate": 0.5}], seed=0)
    changed = (half.train.y != bundle.train.y).float().mean().item()
    assert abs(changed - 0.45) < 0.04  # 0.5 redrawn, 9/10 of those land on another class
    zero = apply_transforms(bundle, [{"name": "label_noise", "rate": 0.0}], seed=0)
    assert torch.equal(zero.train.y, bundle.train.y)
    sub = half.train.subset(torch.arange(10))
    assert torch.equal(sub.y_true, bundle.train.y[:10])


@pytest.mark.parametrize("spec,match", [
    ({"name": "label_noise", "rate": 1.5}, r"rate must be in \[0, 1\]"),
    ({"name": "label_noize"}, "valid data transforms: .*label_noise, long_tail"),
    ({"name": "label_noise", "p": 0.1}, "has no option p; valid options: rate, noise_seed"),
    ({"rate": 0.1}, "needs a name"),
])
def test_bad_transform_specs(bundle, spec, match):
    with pytest.raises(PgdatError, match=match):
        apply_transforms(bundle, [spec], seed=0)
