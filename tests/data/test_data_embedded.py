"""mnist5k (the embedded default), the validation split, the registry and argument errors."""

from __future__ import annotations

import pytest
import torch

from pgdat.data import DATASETS, dataset_info, load_dataset
from pgdat.data.embedded import mnist5k_path
from pgdat.errors import PgdatError


@pytest.fixture(scope="module")
def bundle():
    return load_dataset("mnist5k", download=False)


def test_mnist5k_split_sizes_and_stratification(bundle):
    assert bundle.info.name == "mnist5k" and bundle.info.shape == (1, 28, 28) and bundle.val is None
    assert bundle.train.x.shape == (4000, 1, 28, 28) and bundle.test.x.shape == (1000, 1, 28, 28)
    assert bundle.train.x.dtype == torch.uint8 and bundle.train.y.dtype == torch.int64
    assert torch.equal(bundle.train.y.bincount(), torch.full((10,), 400))
    assert torch.equal(bundle.test.y.bincount(), torch.full((10,), 100))
    assert torch.equal(bundle.test.y[:20], torch.arange(20) % 10)  # interleaved: every prefix is balanced
    rows = torch.cat([bundle.train.index, bundle.test.index])
    assert torch.equal(rows.sort().values, torch.arange(5000))  # a partition of the 5,000 CSV rows
    assert int(bundle.train.x.max()) == 255 and int(bundle.train.x.min()) == 0
    assert 0.10 < bundle.train.x.float().div(255).mean().item() < 0.16  # MNIST mean ~0.13


def test_mnist5k_matches_csv_rows_and_is_deterministic(bundle):
    import gzip

    with gzip.open(mnist5k_path(), "rt") as f:
        lines = f.read().splitlines()
    for pos in (0, 123, 999):
        values = [int(v) for v in lines[int(bundle.test.index[pos])].split(",")]
        assert bundle.test.x[pos].flatten().tolist() == values[:784] and int(bundle.test.y[pos]) == values[784]
    torch.manual_seed(12345)  # the split must not depend on the global RNG
    again = load_dataset("mnist5k")
    assert torch.equal(again.test.index, bundle.test.index) and torch.equal(again.train.x, bundle.train.x)


def test_validation_split_is_fixed_disjoint_and_seeded(bundle):
    a = load_dataset("mnist5k", val_size=1000, val_seed=3)
    torch.manual_seed(999)
    b = load_dataset("mnist5k", val_size=1000, val_seed=3)
    c = load_dataset("mnist5k", val_size=1000, val_seed=4)
    assert len(a.train) == 3000 and len(a.val) == 1000
    assert torch.equal(a.val.index, b.val.index) and torch.equal(a.train.index, b.train.index)
    assert not torch.equal(a.val.index, c.val.index)
    assert set(a.val.index.tolist()).isdisjoint(a.train.index.tolist())
    assert sorted(a.val.index.tolist() + a.train.index.tolist()) == sorted(bundle.train.index.tolist())
    pos = {int(r): i for i, r in enumerate(bundle.train.index)}
    first = pos[int(a.val.index[0])]
    assert torch.equal(a.val.x[0], bundle.train.x[first]) and a.val.y[0] == bundle.train.y[first]


@pytest.mark.parametrize("val_size", [4000, 5000, -1, 1.5, True])
def test_bad_val_size(val_size):
    with pytest.raises(PgdatError, match="val_size must be an integer"):
        load_dataset("mnist5k", val_size=val_size)


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(PgdatError, match="unknown dataset 'imagenet'.*cifar10.*mnist5k"):
        load_dataset("imagenet")


def test_dataset_info_without_loading():
    expected = {"mnist5k": (10, (1, 28, 28), "none"), "mnist": (10, (1, 28, 28), "none"),
                "fashion_mnist": (10, (1, 28, 28), "none"), "cifar10": (10, (3, 32, 32), "crop_flip"),
                "cifar100": (100, (3, 32, 32), "crop_flip"), "svhn": (10, (3, 32, 32), "crop")}
    for name, (classes, shape, augment) in expected.items():
        info = dataset_info(name)
        assert (info.num_classes, info.shape, info.default_augment) == (classes, shape, augment)
        assert len(info.classes) == classes and len(info.mean) == len(info.std) == shape[0]
    assert dataset_info("cifar-10") is dataset_info("cifar10") and dataset_info("fmnist").name == "fashion_mnist"
    assert dataset_info("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert all(spec.files for name, spec in DATASETS.items() if name != "mnist5k")
