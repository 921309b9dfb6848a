"""Checksummed, atomic downloads with urllib (``http(s)://`` and ``file://`` URLs) and the mirror override."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from pgdat.errors import PgdatError
from pgdat.fileio import atomic_write_bytes

MIRROR_ENV = "PGDAT_DATA_MIRROR"
_CHUNK = 1 << 20  # bytes read per step
_TIMEOUT = 60.0  # seconds without data before a transfer is abandoned


def file_digests(path: str | Path, algorithms: tuple[str, ...] = ("md5", "sha256")) -> dict[str, str]:
    """Hex digests of a file's bytes, one per hashlib algorithm name, computed in one streaming pass."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def _expected(sha256: str | None, md5: str | None) -> dict[str, str]:
    return {a: v.lower() for a, v in (("sha256", sha256), ("md5", md5)) if v}


def _mismatch(expected: dict[str, str], actual: dict[str, str]) -> str | None:
    """``"md5 expected X, got Y"`` for the first differing checksum, or None when all match."""
    for algo, want in expected.items():
        if actual[algo] != want:
            return f"{algo} expected {want}, got {actual[algo]}"
    return None


def _by_hand(url: str | None, directory: Path) -> str:
    return f"download it by hand from {url} into {directory}" if url else f"put a correct copy into {directory}"


def verify_file(path: str | Path, sha256: str | None = None, md5: str | None = None, *,
                url: str | None = None) -> Path:
    """Check a file against its expected checksums (hex strings; None skips that algorithm).

    Raises :class:`PgdatError` naming the file, the expected and actual checksum and the fix (``url`` is where a
    good copy comes from). Returns ``path``.
    """
    path = Path(path)
    expected = _expected(sha256, md5)
    if not path.is_file():
        raise PgdatError(f"{path} does not exist; {_by_hand(url, path.parent)}")
    if expected:
        problem = _mismatch(expected, file_digests(path, tuple(expected)))
        if problem:
            raise PgdatError(f"{path} is corrupt or incomplete (checksum mismatch: {problem}); "
                             f"delete {path} and re-run, or {_by_hand(url, path.parent)}")
    return path


def _stream(url: str, out, expected: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    """Copy ``url`` into the open binary file ``out``. Returns the digests of the bytes received and, for a short
    transfer (fewer bytes than the announced Content-Length), a description of it."""
    hashes = {a: hashlib.new(a) for a in expected}
    received = 0
    with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp:
        length = resp.headers.get("Content-Length")
        while chunk := resp.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
            for h in hashes.values():
                h.update(chunk)
    short = None
    if length is not None and length.isdigit() and received != int(length):
        short = f"transfer incomplete: received {received} of {int(length)} bytes"
    return {a: h.hexdigest() for a, h in hashes.items()}, short


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    return str(e.reason) if isinstance(e, urllib.error.URLError) else f"{type(e).__name__}: {e}"


def download_file(url: str, dest: str | Path, sha256: str | None = None, md5: str | None = None) -> Path:
    """Fetch ``url`` into ``dest`` unless a copy with the right checksums is already there; returns ``dest``.

    The bytes stream into a temporary file beside ``dest`` that is checksummed, fsynced and atomically renamed into
    place, so ``dest`` is either absent or complete. A failed, short or corrupted transfer deletes the temporary
    file and raises :class:`PgdatError`; an existing ``dest`` with a wrong checksum is an error, never overwritten.
    """
    dest = Path(dest).expanduser()
    expected = _expected(sha256, md5)
    if dest.exists():
        return verify_file(dest, sha256, md5, url=url)
    fix = f"re-run to retry, or {_by_hand(url, dest.parent)}"

    def fetch(out) -> None:
        try:
            actual, short = _stream(url, out, tuple(expected))
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise PgdatError(f"downloading {dest.name} from {url} failed ({_reason(e)}); nothing was written; "
                             f"{fix}") from None
        problem = _mismatch(expected, actual)
        if short or problem:
            detail = "; ".join(p for p in (short, problem and f"checksum mismatch: {problem}") if p)
            raise PgdatError(f"downloaded {dest.name} from {url} is corrupt or incomplete ({detail}); "
                             f"the partial file was deleted; {fix}")

    print(f"pgdat: downloading {url} -> {dest}", file=sys.stderr)
    try:
        atomic_write_bytes(dest, fetch)  # temp file beside dest, fsync, rename; the temp file is removed on error
    except PgdatError:
        raise
    except OSError as e:
        raise PgdatError(f"cannot write {dest} ({e.strerror or e}); choose a writable data root") from None
    return dest


def resolve_mirror(mirror: str | None = None) -> str | None:
    """The mirror base URL: ``mirror``, else ``$PGDAT_DATA_MIRROR``, else None (official sources).

    A plain directory path becomes a ``file://`` URL.
    """
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if mirror and "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return mirror


def file_url(filename: str, official_url: str, subdir: str, mirror: str | None = None) -> str:
    """Where to fetch one dataset file: ``{mirror}/{subdir}/{filename}`` when a mirror is set (a mirror mirrors the
    data root's layout, so a served or shared data root works as one), else ``{official_url}/{filename}``."""
    base = resolve_mirror(mirror)
    if base:
        return f"{base.rstrip('/')}/{subdir}/{filename}"
    return f"{official_url.rstrip('/')}/{filename}"
