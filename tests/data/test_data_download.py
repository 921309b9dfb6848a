"""download_file / verify_file: exact bytes, checksums, atomicity, no re-download, clear errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pgdat.data import download_file, verify_file
from pgdat.data.download import MIRROR_ENV, file_url, resolve_mirror
from pgdat.errors import PgdatError

ARCHIVE = "cifar10/cifar-10-python.tar.gz"


def _digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_http_download_gives_exact_bytes(sources, server, tmp_path):
    src = sources.root / ARCHIVE
    sha, md5 = _digests(src)
    dest = tmp_path / "out" / "a.tar.gz"
    assert download_file(f"{server.url}/{ARCHIVE}", dest, sha256=sha, md5=md5) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.tar.gz"]  # no temp file left behind


def test_file_url_download(sources, tmp_path):
    src = sources.root / ARCHIVE
    dest = download_file(src.as_uri(), tmp_path / "copy.tar.gz", md5=_digests(src)[1])
    assert dest.read_bytes() == src.read_bytes()


def test_checksum_mismatch_leaves_nothing_and_explains(sources, server, tmp_path):
    src = sources.root / ARCHIVE
    url, actual = f"{server.url}/{ARCHIVE}", _digests(src)[1]
    with pytest.raises(PgdatError) as err:
        download_file(url, tmp_path / "dl" / "a.tar.gz", md5="0" * 32)
    msg = str(err.value)
    assert "a.tar.gz" in msg and "0" * 32 in msg and actual in msg
    assert url in msg and str(tmp_path / "dl") in msg and "by hand" in msg
    assert list((tmp_path / "dl").iterdir()) == []


@pytest.mark.parametrize("with_checksum", [True, False])
def test_truncated_transfer_leaves_nothing(sources, server, tmp_path, with_checksum):
    server.truncate.add(f"/{ARCHIVE}")
    md5 = _digests(sources.root / ARCHIVE)[1] if with_checksum else None
    with pytest.raises(PgdatError, match="a.tar.gz") as err:
        download_file(f"{server.url}/{ARCHIVE}", tmp_path / "dl" / "a.tar.gz", md5=md5)
    msg = str(err.value)
    assert "incomplete" in msg and "re-run" in msg
    assert (f"md5 expected {md5}" in msg) == with_checksum
    assert list((tmp_path / "dl").iterdir()) == []


def test_existing_good_file_is_not_downloaded_again(sources, server, tmp_path):
    sha, md5 = _digests(sources.root / ARCHIVE)
    dest = tmp_path / "a.tar.gz"
    download_file(f"{server.url}/{ARCHIVE}", dest, sha256=sha, md5=md5)
    os.utime(dest, ns=(1, 1))
    assert len(server.requests) == 1
    download_file(f"{server.url}/{ARCHIVE}", dest, sha256=sha, md5=md5)
    assert len(server.requests) == 1
    assert dest.stat().st_mtime_ns == 1


def test_existing_bad_file_is_an_error_and_kept(sources, server, tmp_path):
    dest = tmp_path / "a.tar.gz"
    dest.write_bytes(b"not the archive")
    url = f"{server.url}/{ARCHIVE}"
    with pytest.raises(PgdatError, match="checksum mismatch") as err:
        download_file(url, dest, md5=_digests(sources.root / ARCHIVE)[1])
    assert f"delete {dest}" in str(err.value) and url in str(err.value)
    assert dest.read_bytes() == b"not the archive"
    assert server.requests == []


def test_http_error_is_pgdat_error(server, tmp_path):
    with pytest.raises(PgdatError, match="missing.bin"):
        download_file(f"{server.url}/missing.bin", tmp_path / "dl" / "missing.bin")
    assert list((tmp_path / "dl").iterdir()) == []


def test_verify_file(sources, tmp_path):
    src = sources.root / ARCHIVE
    sha, md5 = _digests(src)
    assert verify_file(src, sha256=sha, md5=md5) == src
    with pytest.raises(PgdatError, match="sha256 expected"):
        verify_file(src, sha256="f" * 64)
    with pytest.raises(PgdatError, match="does not exist"):
        verify_file(tmp_path / "nope")


def test_mirror_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert file_url("f.gz", "https://official/x/", "mnist") == "https://official/x/f.gz"
    assert file_url("f.gz", "https://official/x/", "mnist", "http://127.0.0.1:9/m/") == "http://127.0.0.1:9/m/mnist/f.gz"
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    assert resolve_mirror() == tmp_path.resolve().as_uri()
    assert file_url("f.gz", "https://official/", "svhn") == f"{tmp_path.resolve().as_uri()}/svhn/f.gz"
