"""Builders of hostile checkpoint files for the integrity tests and the fuzz test: zip archives written by hand, so a
record can be deflated or declare any size, and pickles written opcode by opcode."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import torch

from pgdat.checkpoint import build_model, model_config, save_checkpoint


def small_checkpoint(path: Path) -> Path:
    """A real pgdat checkpoint of a small_cnn (1 channel, 10 classes), hash-stamped."""
    torch.manual_seed(0)
    cfg = model_config("small_cnn", 10, 1, [0.1307], [0.3081])
    return save_checkpoint({"model": build_model(cfg).state_dict(), "model_config": cfg}, path)


def records(path: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every record of a zip archive, in order."""
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def record_span(path: Path, part: str) -> tuple[int, int]:
    """(offset, length) in the file of the data of the largest record whose name contains ``part``."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if part in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def write_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> Path:
    """Write a zip by hand. entries: (name, data as stored in the file, method 0/8, declared size, crc32)."""
    out, central = bytearray(), bytearray()
    for name, data, method, size, crc in entries:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0)
        out += n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(n), 0, 0, 0, 0, 0, offset) + n
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


def zeros_deflated(total: int, chunk: int = 1 << 20) -> bytes:
    """A raw deflate stream that inflates to ``total`` zero bytes (a multiple of ``chunk``), built from one
    compressed chunk repeated (a full flush makes every chunk's output identical), so it costs ~total/1000 bytes."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(bytes(chunk)) + co.flush(zlib.Z_FULL_FLUSH)
    return block * (total // chunk) + co.flush(zlib.Z_FINISH)


def with_record_replaced(src: Path, dst: Path, suffix: str, data: bytes, *, method: int = 0,
                         size: int | None = None) -> Path:
    """A copy of checkpoint ``src`` whose record ending with ``suffix`` holds ``data`` (deflated: method 8)."""
    entries = []
    for name, old in records(src):
        if name.endswith(suffix):
            entries.append((name, data, method, len(data) if size is None else size,
                            zlib.crc32(data) if method == 0 else 0))
        else:
            entries.append((name, old, 0, len(old), zlib.crc32(old)))
    return write_zip(dst, entries)


def nested_pickle(depth: int) -> bytes:
    """Protocol-2 pickle of {"model": {}, "model_config": [[[...]]]} nested ``depth`` lists deep."""
    def text(s: str) -> bytes:
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    return (b"\x80\x02}(" + text("model") + b"}" + text("model_config") + b"]" * depth + b"a" * (depth - 1)
            + b"u.")


def memo_nested_pickle(depth: int) -> bytes:
    """Like :func:`nested_pickle`, but each list is memoised empty and only then gets the previous one appended
    (``[]``, PUT i, GET i-1, APPEND, POP): the stack never holds more than two lists."""
    def idx(op: bytes, i: int) -> bytes:
        return op + struct.pack("<I", i)

    levels = b"]" + idx(b"r", 0) + b"0" + b"".join(b"]" + idx(b"r", i) + idx(b"j", i - 1) + b"a0"
                                                   for i in range(1, depth))
    return (b"\x80\x02}(X\x05\x00\x00\x00model}X\x0c\x00\x00\x00model_config" + levels + idx(b"j", depth - 1)
            + b"u.")
