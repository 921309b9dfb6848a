"""Reader of the CIFAR-10 and CIFAR-100 "python version" tarballs, straight from the archive (no extraction).

The batches are Python pickles. Unpickling runs code named by the file, so it is only done on the official
archives after :func:`pgdat.data.datasets.load_dataset` has verified their md5 checksum; do not point this reader
at archives of unknown origin.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from pgdat.data.bundle import RawData, Split
from pgdat.errors import PgdatError

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"

_LAYOUT = {  # archive -> (folder in the archive, train batches, test batches, label key, meta file, names key)
    CIFAR10_ARCHIVE: ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                      b"labels", "batches.meta", b"label_names"),
    CIFAR100_ARCHIVE: ("cifar-100-python", ("train",), ("test",), b"fine_labels", "meta", b"fine_label_names"),
}


def _corrupt(path: Path, what: str) -> PgdatError:
    return PgdatError(f"{path} is not a valid CIFAR archive ({what}); delete it and re-run to download it again")


def _unpickle(path: Path, f) -> dict:
    try:
        return pickle.load(f, encoding="bytes")
    except Exception as e:  # a damaged pickle can raise nearly any exception type
        raise _corrupt(path, f"unpickling failed, {type(e).__name__}: {e}") from None


def _read_members(path: Path, folder: str, names: set[str]) -> dict[str, dict]:
    """Unpickle the members ``folder/name`` for ``name`` in ``names``, in one sequential pass over the tarball."""
    found: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                folder_name, _, base = member.name.rpartition("/")
                if member.isfile() and folder_name == folder and base in names:
                    with tar.extractfile(member) as f:
                        found[base] = _unpickle(path, f)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    missing = sorted(names - set(found))
    if missing:
        raise _corrupt(path, f"missing members {', '.join(folder + '/' + m for m in missing)}")
    return found


def _batches(path: Path, members: dict[str, dict], names: tuple[str, ...], label_key: bytes) -> Split:
    """Concatenate pickled batches {b"data": (n, 3072) uint8, label_key: n ints} into a Split (N, 3, 32, 32)."""
    xs, ys = [], []
    for name in names:
        batch = members[name]
        if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
            raise _corrupt(path, f"member {name} lacks data or {label_key.decode()}")
        x = np.asarray(batch[b"data"], dtype=np.uint8)
        y = np.asarray(batch[label_key], dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
            raise _corrupt(path, f"member {name} holds data {x.shape} and {len(y)} labels, expected (n, 3072) and n")
        xs.append(x)
        ys.append(y)
    x = torch.from_numpy(np.concatenate(xs).reshape(-1, 3, 32, 32))
    return Split(x, torch.from_numpy(np.concatenate(ys)))


def read_cifar(path: str | Path) -> RawData:
    """CIFAR-10 or CIFAR-100 (fine labels) train and test sets from the archive at ``path`` (named as the official
    file): images uint8 (N, 3, 32, 32), labels int64 (N,), class names from the archive's meta file."""
    path = Path(path)
    if path.name not in _LAYOUT:
        raise PgdatError(f"{path}: unknown CIFAR archive; expected one of {', '.join(_LAYOUT)}")
    folder, train, test, label_key, meta, names_key = _LAYOUT[path.name]
    members = _read_members(path, folder, {*train, *test, meta})
    names = members[meta].get(names_key) if isinstance(members[meta], dict) else None
    if not isinstance(names, list):
        raise _corrupt(path, f"{meta} lacks {names_key.decode()}")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return RawData(_batches(path, members, train, label_key), _batches(path, members, test, label_key), classes)


def read_cifar10(directory: str | Path) -> RawData:
    """CIFAR-10 from ``directory``/cifar-10-python.tar.gz."""
    return read_cifar(Path(directory) / CIFAR10_ARCHIVE)


def read_cifar100(directory: str | Path) -> RawData:
    """CIFAR-100 (100 fine classes) from ``directory``/cifar-100-python.tar.gz."""
    return read_cifar(Path(directory) / CIFAR100_ARCHIVE)
