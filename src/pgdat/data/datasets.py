"""The dataset registry and :func:`load_dataset`, the only way a dataset name becomes tensors.

Each registered :class:`DatasetSpec` lists its files with their checksums, its official base URL and its reader.
Files live in ``{root}/{spec.subdir}/``; ``root`` defaults to ``$PGDAT_DATA`` or ``~/.cache/pgdat/data``. Missing
files are fetched from ``{mirror}/{subdir}/{file}`` when a mirror is set (argument or ``$PGDAT_DATA_MIRROR``), else
from the official URL, and every file is checksummed before it is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pgdat.data.bundle import DataBundle, DatasetInfo, RawData, Split
from pgdat.data.cifar import CIFAR10_ARCHIVE, CIFAR100_ARCHIVE, read_cifar10, read_cifar100
from pgdat.data.download import download_file, file_url, verify_file
from pgdat.data.embedded import read_mnist5k
from pgdat.data.idx import IDX_FILES, read_idx_dataset
from pgdat.data.svhn import SVHN_FILES, read_svhn
from pgdat.errors import PgdatError
from pgdat.registry import Registry

ROOT_ENV = "PGDAT_DATA"
DEFAULT_ROOT = "~/.cache/pgdat/data"


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset and its expected checksums (hex; None skips that check)."""

    name: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """How to obtain and read a dataset: ``reader(directory)`` reads ``files`` from ``{root}/{subdir}``, which are
    fetched from ``url`` (their official base URL). An embedded dataset has no files."""

    info: DatasetInfo
    reader: Callable[[Path], RawData]
    files: tuple[FileSpec, ...] = ()
    url: str = ""
    subdir: str = ""

    @property
    def directory_name(self) -> str:
        return self.subdir or self.info.name


DATASETS: Registry[DatasetSpec] = Registry("dataset")

_DIGITS = tuple(str(d) for d in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100 = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can
castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster
man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck
pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk
skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm
""".split())

_MNIST = DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), _DIGITS, "none")


def _idx_files(*md5s: str) -> tuple[FileSpec, ...]:
    names = (*IDX_FILES["train"], *IDX_FILES["test"])
    return tuple(FileSpec(n, md5=m) for n, m in zip(names, md5s, strict=True))


DATASETS.register("mnist5k")(DatasetSpec(replace(_MNIST, name="mnist5k"), read_mnist5k))
DATASETS.register("mnist")(DatasetSpec(
    _MNIST, read_idx_dataset, url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    files=_idx_files("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                     "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")))
DATASETS.register("fashion_mnist", "fashion-mnist", "fmnist")(DatasetSpec(
    DatasetInfo("fashion_mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), _FASHION, "none"), read_idx_dataset,
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    files=_idx_files("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                     "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")))
DATASETS.register("cifar10", "cifar-10")(DatasetSpec(
    DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), _CIFAR10,
                "crop_flip"), read_cifar10, url="https://www.cs.toronto.edu/~kriz/",
    files=(FileSpec(CIFAR10_ARCHIVE, md5="c58f30108f718f92721af3b95e74349a"),)))
DATASETS.register("cifar100", "cifar-100")(DatasetSpec(
    DatasetInfo("cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR100,
                "crop_flip"), read_cifar100, url="https://www.cs.toronto.edu/~kriz/",
    files=(FileSpec(CIFAR100_ARCHIVE, md5="eb9058c3a382ffc7106e4002c42a8d85"),)))
DATASETS.register("svhn")(DatasetSpec(
    DatasetInfo("svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), _DIGITS, "crop"),
    read_svhn, url="http://ufldl.stanford.edu/housenumbers/",
    files=(FileSpec(SVHN_FILES["train"], md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
           FileSpec(SVHN_FILES["test"], md5="eb5a983be6a315427106f1b164d9cef3"))))


def dataset_names() -> list[str]:
    """All registered dataset names (aliases included), sorted."""
    return sorted(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a registered dataset, without reading any file."""
    return DATASETS.get(name).info


def data_root(root: str | Path | None = None) -> Path:
    """The data directory: ``root``, else ``$PGDAT_DATA``, else ``~/.cache/pgdat/data`` (user-expanded)."""
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()


def ensure_files(spec: DatasetSpec, directory: Path, *, download: bool = True, mirror: str | None = None) -> None:
    """Make every file of ``spec`` present in ``directory`` with the right checksum, downloading missing ones."""
    missing = [f for f in spec.files if not (directory / f.name).exists()]
    if missing and not download:
        sources = ", ".join(file_url(f.name, spec.url, spec.directory_name, mirror) for f in missing)
        raise PgdatError(f"{spec.info.name}: missing {', '.join(f.name for f in missing)} in {directory}; put the "
                         f"files there (from {sources}) or allow downloading (pgdat train: --set data.download=true; "
                         "pgdat eval: drop --no-download; Python: download=True)")
    for f in spec.files:
        url = file_url(f.name, spec.url, spec.directory_name, mirror)
        if f in missing:
            download_file(url, directory / f.name, sha256=f.sha256, md5=f.md5)
        else:
            verify_file(directory / f.name, sha256=f.sha256, md5=f.md5, url=url)


def _check_raw(raw: RawData, info: DatasetInfo, directory: Path) -> None:
    """The reader's output matches ``info``: image shape and label range; class names, if read, their count."""
    for part, split in (("train", raw.train), ("test", raw.test)):
        if tuple(split.x.shape[1:]) != info.shape:
            raise PgdatError(f"{info.name} {part} images in {directory} have shape {tuple(split.x.shape[1:])}, "
                             f"expected {info.shape}; delete the files and re-run to download them again")
        if len(split.y) and (int(split.y.min()) < 0 or int(split.y.max()) >= info.num_classes):
            raise PgdatError(f"{info.name} {part} labels in {directory} fall outside [0, {info.num_classes - 1}]; "
                             "delete the files and re-run to download them again")
    if raw.classes is not None and len(raw.classes) != info.num_classes:
        raise PgdatError(f"{info.name} files in {directory} name {len(raw.classes)} classes, expected "
                         f"{info.num_classes}; delete the files and re-run to download them again")


def split_validation(train: Split, val_size: int, val_seed: int = 0) -> tuple[Split, Split | None]:
    """Hold out ``val_size`` training examples, chosen by a permutation from ``torch.Generator().manual_seed(
    val_seed)`` (independent of the global RNG). Returns (remaining train, val), both in their original order."""
    n = len(train)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < n:
        raise PgdatError(f"val_size must be an integer in [0, {n - 1}] (the training set has {n} images); "
                         f"got {val_size!r}")
    if val_size == 0:
        return train, None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(val_seed))
    return train.subset(perm[val_size:].sort().values), train.subset(perm[:val_size].sort().values)


def load_dataset(name: str, root: str | Path | None = None, *, download: bool = True, val_size: int = 0,
                 val_seed: int = 0, mirror: str | None = None) -> DataBundle:
    """Load a registered dataset as uint8 (N, C, H, W) images and int64 labels, with a fixed validation split.

    ``root``: data directory (default ``$PGDAT_DATA`` or ``~/.cache/pgdat/data``); ``download``: fetch missing
    files (else a missing file is an error saying where to put it); ``val_size``: training images held out as the
    validation split (0: none), chosen with ``val_seed``, disjoint from train and the same on every call;
    ``mirror``: base URL (or directory) laid out like the data root, tried instead of the official sources.
    """
    spec = DATASETS.get(name)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0:
        raise PgdatError(f"val_size must be an integer >= 0 (got {val_size!r})")
    directory = data_root(root) / spec.directory_name
    if spec.files:
        ensure_files(spec, directory, download=download, mirror=mirror)
    raw = spec.reader(directory)
    _check_raw(raw, spec.info, directory)
    info = replace(spec.info, classes=raw.classes) if raw.classes is not None else spec.info
    train, val = split_validation(raw.train, val_size, val_seed)
    return DataBundle(info, train, val, raw.test)
