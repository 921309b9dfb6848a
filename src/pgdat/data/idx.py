"""Reader of the gzipped IDX files of MNIST and Fashion-MNIST."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from pgdat.data.bundle import RawData, Split
from pgdat.errors import PgdatError

IMAGES_MAGIC = 2051  # unsigned byte, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 2049  # unsigned byte, 1 dimension (N,)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _corrupt(path: Path, what: str) -> PgdatError:
    return PgdatError(f"{path} is not a valid IDX file ({what}); delete it and re-run to download it again")


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """The uint8 array stored in one gzipped IDX file: (N, rows, cols) for images, (N,) for labels.

    Validates the magic number and that the payload size matches the header.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"gzip: {e}") from None
    ndim = magic - 2048
    if len(raw) < 4 + 4 * ndim:
        raise _corrupt(path, f"only {len(raw)} bytes, shorter than its header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise _corrupt(path, f"magic number {found}, expected {magic}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    payload = memoryview(raw)[4 + 4 * ndim:]
    if len(payload) != int(np.prod(dims)):
        raise _corrupt(path, f"header says {'x'.join(map(str, dims))} = {int(np.prod(dims))} bytes, "
                             f"file holds {len(payload)}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _read_pair(directory: Path, images: str, labels: str) -> Split:
    x = read_idx(directory / images, IMAGES_MAGIC)
    y = read_idx(directory / labels, LABELS_MAGIC)
    if len(x) != len(y):
        raise PgdatError(f"{directory / images} holds {len(x)} images but {directory / labels} holds {len(y)} "
                         "labels; delete both and re-run to download them again")
    return Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))


def read_idx_dataset(directory: str | Path) -> RawData:
    """MNIST-format train and test sets from ``directory``: images uint8 (N, 1, 28, 28), labels int64 (N,)."""
    directory = Path(directory)
    return RawData(train=_read_pair(directory, *IDX_FILES["train"]), test=_read_pair(directory, *IDX_FILES["test"]))
