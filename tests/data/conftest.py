"""Tiny dataset files in the official formats, a loopback HTTP server serving them, and specs that point at them."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from pgdat.data import DATASETS, FileSpec


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped IDX file: magic 2051 for (N, rows, cols) images, 2049 for (N,) labels."""
    header = (2048 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _add_pickle(tar: tarfile.TarFile, name: str, obj: object) -> None:
    payload = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_cifar(path: Path, folder: str, batches: dict[str, tuple[np.ndarray, np.ndarray]], label_key: bytes,
                meta: str, names_key: bytes, names: list[str]) -> None:
    """A CIFAR "python version" tarball: pickled {b"data": (n, 3072) uint8, label_key: list} batches plus meta."""
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_dir_info(folder))
        _add_pickle(tar, f"{folder}/{meta}", {names_key: [n.encode() for n in names]})
        for name, (x, y) in batches.items():
            batch = {b"batch_label": name.encode(), b"data": x.reshape(len(x), -1), label_key: y.tolist()}
            _add_pickle(tar, f"{folder}/{name}", batch)


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@dataclass
class TinySources:
    """The served directory, the arrays written per dataset (``expected[name] = (xtr, ytr, xte, yte)``, NCHW) and
    the class names written into CIFAR meta files."""

    root: Path
    expected: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def files(self, name: str) -> list[Path]:
        return sorted((self.root / name).iterdir())


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def build_sources(root: Path) -> TinySources:
    """Write tiny MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100 and SVHN files under ``root/{dataset}/``."""
    rng = np.random.default_rng(0)
    src = TinySources(root)
    for name in ("mnist", "fashion_mnist"):
        (root / name).mkdir(parents=True)
        xtr, xte = _images(rng, 20, (1, 28, 28)), _images(rng, 8, (1, 28, 28))
        ytr, yte = rng.integers(0, 10, 20), rng.integers(0, 10, 8)
        for prefix, x, y in (("train", xtr, ytr), ("t10k", xte, yte)):
            write_idx(root / name / f"{prefix}-images-idx3-ubyte.gz", x[:, 0])
            write_idx(root / name / f"{prefix}-labels-idx1-ubyte.gz", y)
        src.expected[name] = (xtr, ytr, xte, yte)
    (root / "cifar10").mkdir()
    xtr, xte = _images(rng, 20, (3, 32, 32)), _images(rng, 4, (3, 32, 32))
    ytr, yte = rng.integers(0, 10, 20), rng.integers(0, 10, 4)
    batches = {f"data_batch_{i + 1}": (xtr[4 * i:4 * i + 4], ytr[4 * i:4 * i + 4]) for i in range(5)}
    names = [f"class{c}" for c in range(10)]
    write_cifar(root / "cifar10" / "cifar-10-python.tar.gz", "cifar-10-batches-py",
                {**batches, "test_batch": (xte, yte)}, b"labels", "batches.meta", b"label_names", names)
    src.expected["cifar10"], src.classes["cifar10"] = (xtr, ytr, xte, yte), tuple(names)
    (root / "cifar100").mkdir()
    xtr, xte = _images(rng, 12, (3, 32, 32)), _images(rng, 6, (3, 32, 32))
    ytr, yte = rng.integers(0, 100, 12), rng.integers(0, 100, 6)
    names = [f"fine{c}" for c in range(100)]
    write_cifar(root / "cifar100" / "cifar-100-python.tar.gz", "cifar-100-python",
                {"train": (xtr, ytr), "test": (xte, yte)}, b"fine_labels", "meta", b"fine_label_names", names)
    src.expected["cifar100"], src.classes["cifar100"] = (xtr, ytr, xte, yte), tuple(names)
    (root / "svhn").mkdir()
    parts = []
    for file, n in (("train_32x32.mat", 10), ("test_32x32.mat", 5)):
        x, digits = _images(rng, n, (3, 32, 32)), np.arange(n) % 10
        mat_y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)  # SVHN stores the digit 0 as 10
        scipy.io.savemat(root / "svhn" / file, {"X": x.transpose(2, 3, 1, 0), "y": mat_y})
        parts += [x, digits]
    src.expected["svhn"] = tuple(parts)
    return src


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sources(tmp_path: Path) -> TinySources:
    return build_sources(tmp_path / "served")


@pytest.fixture
def tiny_specs(sources: TinySources) -> Iterator[TinySources]:
    """Point the registered specs' checksums at the tiny files (md5 and sha256), keeping names and readers.

    (``monkeypatch.setitem`` cannot be used: it calls ``dict.get`` with a default, which ``Registry.get`` lacks.)
    """
    saved = {name: DATASETS[name] for name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn")}
    for name, spec in saved.items():
        files = tuple(FileSpec(f.name, md5=md5_of(sources.root / name / f.name),
                               sha256=sha256_of(sources.root / name / f.name)) for f in spec.files)
        DATASETS[name] = replace(spec, files=files)
    try:
        yield sources
    finally:
        DATASETS.update(saved)


class _Handler(SimpleHTTPRequestHandler):
    """Serves files; logs each requested path; truncates (half the bytes, full Content-Length) paths in
    ``server.truncate``."""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.requests.append(self.path)
        if self.path in self.server.truncate:
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    url: str
    requests: list[str]
    truncate: set[str]


@pytest.fixture
def server(sources: TinySources) -> Iterator[Server]:
    """A loopback HTTP server on 127.0.0.1 (free port) serving ``sources.root``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(sources.root)))
    httpd.daemon_threads = True
    httpd.requests, httpd.truncate = [], set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests, httpd.truncate)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
