"""Reader of the SVHN cropped-digits MATLAB files (``train_32x32.mat``, ``test_32x32.mat``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pgdat.data.bundle import RawData, Split
from pgdat.errors import PgdatError

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_svhn_mat(path: str | Path) -> Split:
    """One SVHN split: ``X`` (32, 32, 3, N) becomes uint8 (N, 3, 32, 32); label 10 (the digit 0) becomes 0."""
    import scipy.io

    path = Path(path)
    fix = f"delete {path} and re-run to download it again"
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, MatReadError... on damaged files
        raise PgdatError(f"{path} is not a readable SVHN .mat file ({type(e).__name__}: {e}); {fix}") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.ndim != 4 or x.shape[2] != 3:
        raise PgdatError(f"{path} lacks an image array X of shape (H, W, 3, N) and labels y; {fix}")
    y = y.reshape(-1).astype(np.int64)
    if len(y) != x.shape[3]:
        raise PgdatError(f"{path} holds {x.shape[3]} images but {len(y)} labels; {fix}")
    y[y == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(x.astype(np.uint8, copy=False).transpose(3, 2, 0, 1)))
    return Split(images, torch.from_numpy(y))


def read_svhn(directory: str | Path) -> RawData:
    """SVHN train (73,257) and test (26,032) sets from ``directory`` (the ``extra`` set is not used)."""
    directory = Path(directory)
    return RawData(read_svhn_mat(directory / SVHN_FILES["train"]), read_svhn_mat(directory / SVHN_FILES["test"]))
