"""load_dataset on tiny files in the official formats served from a loopback mirror: exact contents, clear errors."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from pgdat.data import load_dataset
from pgdat.data.cifar import read_cifar
from pgdat.data.idx import read_idx_dataset
from pgdat.data.svhn import read_svhn_mat
from pgdat.errors import PgdatError

NAMES = ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"]


@pytest.mark.parametrize("name", NAMES)
def test_download_and_read_gives_the_written_data(tiny_specs, server, tmp_path, name):
    bundle = load_dataset(name, tmp_path / "root", mirror=server.url)
    xtr, ytr, xte, yte = (torch.from_numpy(np.asarray(a)) for a in tiny_specs.expected[name])
    assert bundle.train.x.dtype == torch.uint8 and bundle.train.y.dtype == torch.int64
    assert torch.equal(bundle.train.x, xtr) and torch.equal(bundle.train.y, ytr.long())
    assert torch.equal(bundle.test.x, xte) and torch.equal(bundle.test.y, yte.long())
    assert torch.equal(bundle.train.index, torch.arange(len(ytr))) and bundle.val is None
    assert bundle.info.classes == tiny_specs.classes.get(name, bundle.info.classes)
    assert len(bundle.info.classes) == bundle.info.num_classes
    assert [p.name for p in sorted((tmp_path / "root" / name).iterdir())] == [p.name for p in tiny_specs.files(name)]
    requests = len(server.requests)
    again = load_dataset(name, tmp_path / "root", download=False, mirror=server.url)
    assert len(server.requests) == requests and torch.equal(again.test.x, bundle.test.x)


def test_root_and_mirror_from_environment(tiny_specs, server, tmp_path, monkeypatch):
    monkeypatch.setenv("PGDAT_DATA", str(tmp_path / "envroot"))
    monkeypatch.setenv("PGDAT_DATA_MIRROR", str(tiny_specs.root))  # a plain directory works as a mirror
    bundle = load_dataset("cifar10")
    assert (tmp_path / "envroot" / "cifar10" / "cifar-10-python.tar.gz").is_file()
    assert len(bundle.train) == 20 and server.requests == []


def test_missing_files_without_download_say_what_to_put_where(tiny_specs, tmp_path):
    with pytest.raises(PgdatError) as err:
        load_dataset("svhn", tmp_path / "root", download=False)
    msg = str(err.value)
    assert "train_32x32.mat" in msg and "test_32x32.mat" in msg and str(tmp_path / "root" / "svhn") in msg
    assert "http://ufldl.stanford.edu/housenumbers/train_32x32.mat" in msg
    assert not (tmp_path / "root").exists()


def test_corrupted_archive_is_rejected_and_nothing_is_kept(tiny_specs, server, tmp_path):
    served = tiny_specs.root / "cifar100" / "cifar-100-python.tar.gz"
    data = bytearray(served.read_bytes())
    data[100:110] = bytes(b ^ 0xFF for b in data[100:110])
    served.write_bytes(bytes(data))
    with pytest.raises(PgdatError, match="cifar-100-python.tar.gz.*checksum mismatch: sha256 expected"):
        load_dataset("cifar100", tmp_path / "root", mirror=server.url)
    assert list((tmp_path / "root" / "cifar100").iterdir()) == []


def test_damaged_local_file_is_reported_not_overwritten(tiny_specs, server, tmp_path):
    load_dataset("mnist", tmp_path / "root", mirror=server.url)
    local = tmp_path / "root" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    local.write_bytes(local.read_bytes()[:-3])
    with pytest.raises(PgdatError, match=f"delete {local} and re-run"):
        load_dataset("mnist", tmp_path / "root", mirror=server.url)
    assert len(local.read_bytes()) > 0 and len(server.requests) == 4


def _one_line_error(fn, *args) -> str:
    with pytest.raises(PgdatError) as err:
        fn(*args)
    msg = str(err.value)
    assert "\n" not in msg and "delete" in msg
    return msg


def test_idx_reader_rejects_bad_magic_truncation_and_garbage(sources, tmp_path):
    directory = tmp_path / "mnist"
    shutil.copytree(sources.root / "mnist", directory)
    images = directory / "train-images-idx3-ubyte.gz"
    good = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress((2049).to_bytes(4, "big") + good[4:]))
    assert "magic number 2049, expected 2051" in _one_line_error(read_idx_dataset, directory)
    images.write_bytes(gzip.compress(good[:-10]))
    assert "train-images-idx3-ubyte.gz" in _one_line_error(read_idx_dataset, directory)
    images.write_bytes(gzip.compress(good)[:-20])  # cut-off gzip stream
    assert "gzip" in _one_line_error(read_idx_dataset, directory)
    images.write_bytes(b"plain garbage")
    assert str(images) in _one_line_error(read_idx_dataset, directory)


def test_cifar_and_svhn_readers_reject_damaged_files(sources, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes((sources.root / "cifar10" / archive.name).read_bytes()[:2000])
    assert str(archive) in _one_line_error(read_cifar, archive)
    mat = tmp_path / "train_32x32.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    assert str(mat) in _one_line_error(read_svhn_mat, mat)
