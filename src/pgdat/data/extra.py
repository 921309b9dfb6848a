"""Extra training data (``data.extra``): an external labelled image set, e.g. the 1M-20M diffusion-generated CIFAR-10
images of Wang et al. 2023, mixed into every training batch at a fixed fraction.

The file is an uncompressed ``.npz`` with ``image`` uint8 (N, H, W, C) and ``label`` integer (N,), the layout the
generated-data papers release. ``image`` is memory-mapped straight from the archive (an uncompressed member is a
plain ``.npy`` at a byte offset), so only the images a batch draws are ever read: a 3 GB file costs no 3 GB of RAM.
Labels (8 bytes per image) are read whole.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgdat.errors import PgdatError

EXTRA_KEYS = ("path", "fraction", "sha256", "n_images")  # data.extra options; path and fraction are required
_CONVERT = ("convert it once with numpy: d = np.load('IN.npz'); np.savez('OUT.npz', image=d['image'], "
            "label=d['label']) (np.savez stores members uncompressed)")


@dataclass(frozen=True)
class NpyMember:
    """Where an uncompressed ``.npy`` member's array lies in its ``.npz``: byte ``offset``, dtype, shape, order."""

    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool


def _member(path: Path, zf: zipfile.ZipFile, key: str) -> NpyMember:
    """Locate ``key.npy`` in the archive; refuse a compressed member (it cannot be memory-mapped)."""
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        names = ", ".join(n.removesuffix(".npy") for n in zf.namelist()) or "none"
        raise PgdatError(f"data.extra.path {path}: no array '{key}' (it holds {names}); the file needs image uint8 "
                         "(N, H, W, C) and label (N,), e.g. np.savez('x.npz', image=images, label=labels)") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise PgdatError(f"data.extra.path {path}: array '{key}' is compressed (np.savez_compressed), so it cannot "
                         f"be memory-mapped and would have to be loaded whole; {_CONVERT}")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the local file header: name and extra-field lengths at bytes 26..30
        if local[:4] != b"PK\x03\x04":
            raise PgdatError(f"data.extra.path {path}: damaged zip header of '{key}'; rewrite the file with np.savez")
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        return NpyMember(f.tell(), dtype, tuple(shape), fortran_order)


def inspect_extra(path: str | Path) -> tuple[NpyMember, NpyMember]:
    """The ``image`` and ``label`` members of an extra-data file, checked for layout, without reading the arrays."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PgdatError(f"data.extra.path {path}: no such file; give an .npz with image uint8 (N, H, W, C) and "
                         "label (N,), e.g. data.extra={path: gen1m.npz, fraction: 0.7}")
    try:
        with zipfile.ZipFile(path) as zf:
            image, label = _member(path, zf, "image"), _member(path, zf, "label")
    except zipfile.BadZipFile:
        raise PgdatError(f"data.extra.path {path}: not an .npz (zip) file; write one with np.savez") from None
    if image.dtype != np.uint8 or len(image.shape) != 4 or image.fortran_order:
        raise PgdatError(f"data.extra.path {path}: image must be a C-ordered uint8 array (N, H, W, C); got "
                         f"{image.dtype} {image.shape}")
    if len(label.shape) != 1 or label.shape[0] != image.shape[0] or label.dtype.kind not in "iu":
        raise PgdatError(f"data.extra.path {path}: label must be an integer array ({image.shape[0]},) matching "
                         f"image; got {label.dtype} {label.shape}")
    if image.shape[0] == 0:
        raise PgdatError(f"data.extra.path {path}: the file holds no images")
    return image, label


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (memory stays flat for any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ExtraSet:
    """A memory-mapped extra image set: ``images`` np.memmap uint8 (N, H, W, C), ``labels`` int64 tensor (N,),
    mixed into each training batch at ``fraction`` (the share of a batch's images drawn from it)."""

    path: Path
    images: np.ndarray
    labels: torch.Tensor
    fraction: float
    sha256: str

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> dict[str, Any]:
        """What a run records: the resolved ``data.extra`` options (path, fraction, sha256, n_images)."""
        return {"path": str(self.path), "fraction": self.fraction, "sha256": self.sha256, "n_images": len(self)}

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        """Images at ``idx`` (k,) as uint8 (k, C, H, W) on the host; reads only those rows from the file."""
        return torch.from_numpy(np.ascontiguousarray(self.images[np.sort(idx)])).permute(0, 3, 1, 2)


def load_extra(options: dict[str, Any], shape: tuple[int, int, int], num_classes: int) -> ExtraSet:
    """Open ``data.extra`` for a dataset of image ``shape`` (C, H, W) and ``num_classes``: checks layout, shape,
    labels and, when the options pin them, the sha256 and image count."""
    image, label = inspect_extra(options["path"])
    path = Path(options["path"]).expanduser()
    n, h, w, c = image.shape
    if (c, h, w) != tuple(shape):
        raise PgdatError(f"data.extra.path {path}: images are {h}x{w}x{c} (H, W, C) but the dataset's are "
                         f"{shape[1]}x{shape[2]}x{shape[0]}; give images of the training data's size")
    images = np.memmap(path, dtype=np.uint8, mode="r", offset=image.offset, shape=image.shape)
    raw = np.memmap(path, dtype=label.dtype, mode="r", offset=label.offset, shape=label.shape)
    labels = torch.from_numpy(np.array(raw, dtype=np.int64))
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise PgdatError(f"data.extra.path {path}: labels must lie in [0, {num_classes - 1}] for this dataset (got "
                         f"{int(labels.min())}..{int(labels.max())})")
    digest = file_sha256(path)
    for key, have in (("sha256", digest), ("n_images", n)):
        want = options.get(key)
        if want is not None and want != have:
            raise PgdatError(f"data.extra.{key}: the file {path} has {have}, not the pinned {want}; the extra data "
                             "changed, so point data.extra.path at the original file or drop the pin to accept it")
    return ExtraSet(path, images, labels, float(options["fraction"]), digest)


def extra_per_batch(batch_size: int, fraction: float) -> int:
    """Extra images in a batch of ``batch_size``: round(batch_size * fraction), at least 1 and at most B - 1."""
    k = round(batch_size * fraction)
    if not 1 <= k <= batch_size - 1:
        raise PgdatError(f"data.extra.fraction {fraction} gives {k} extra images in a batch of {batch_size}; each "
                         "batch needs at least one real and one extra image: use a fraction in "
                         f"[{1 / batch_size:.3g}, {1 - 1 / batch_size:.3g}] or a larger data.batch_size")
    return k


def draw_extra(n_extra: int, sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Per batch, ``sizes[i]`` indices into the extra set: an epoch draws without replacement (fresh permutations
    concatenated when it needs more images than the set holds)."""
    need = sum(sizes)
    if need == 0:
        return [np.zeros(0, dtype=np.int64) for _ in sizes]
    perm = np.concatenate([rng.permutation(n_extra) for _ in range(-(-need // n_extra))])[:need]
    return np.split(perm, np.cumsum(sizes)[:-1]) if sizes else []


def extra_batches(extra: ExtraSet, picks: list[np.ndarray], device: torch.device, index_offset: int,
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per batch, the extra images ``picks[i]`` as (x uint8 (k, C, H, W), y int64 (k,), source index (k,)) on
    ``device``; index = ``index_offset`` + row in the file. Reading from the file runs one batch ahead on a worker
    thread, so it overlaps the training step; host->device copies are non-blocking from pinned memory."""
    pin = device.type == "cuda"

    def load(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = np.sort(idx)
        x = extra.gather(idx)
        rows = torch.from_numpy(idx)
        if pin:
            x = x.pin_memory()
        return x, extra.labels[rows], rows + index_offset

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgdat-extra") as pool:
        pending = pool.submit(load, picks[0]) if picks else None
        for i in range(len(picks)):
            x, y, idx = pending.result()
            pending = pool.submit(load, picks[i + 1]) if i + 1 < len(picks) else None
            yield (x.to(device, non_blocking=pin), y.to(device, non_blocking=pin), idx.to(device, non_blocking=pin))
