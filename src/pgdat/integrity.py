"""Checkpoint integrity: a content hash written with every checkpoint, and bounds on what an untrusted file may make
the loader allocate, checked on the zip directory and the pickle opcodes before ``torch.load`` reads anything.

``torch.save`` writes a zip archive of *stored* (uncompressed) records: ``<name>/data.pkl`` (the pickled structure)
and one record per tensor storage (``<name>/data/<key>``). ``torch.load`` neither checks the records' CRCs nor bounds
their sizes, so a flipped byte in tensor data loads silently and a deflated record inflates to whatever it declares.
"""

from __future__ import annotations

import hashlib
import io
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from pgdat.errors import PgdatError

INTEGRITY_KEY = "pgdat_integrity"  # {"algorithm": HASH_ALGORITHM, "digest": hex}, added by save_checkpoint
HASH_ALGORITHM = "sha256-content-v1"
MAX_PICKLE_BYTES = 64 << 20  # the structure record (tensors are separate records); a trained run's is ~100 KB
MAX_PICKLE_OPS = 4_000_000  # pickle opcodes; each can create one Python object
MAX_NESTING = 64  # containers inside containers (a run's checkpoint nests 6 deep)
MAX_STACK = 50_000  # values pending on the unpickler's stack (torch.save batches a dict's items by 1000)
MAX_NODES = 4_000_000  # values visited when walking the loaded structure, shared sub-structures counted each time


def _archive_error(path: Path, reason: str) -> PgdatError:
    return PgdatError(f"corrupt checkpoint {path}: {reason}; it was damaged or crafted after torch.save wrote it, so "
                      "it is not loaded: resume from an earlier checkpoint or copy the file again")


def check_archive(path: Path) -> None:
    """PgdatError unless ``path`` is a torch zip checkpoint whose records are stored (not compressed), lie inside
    the file without overlapping, and whose pickle fits :data:`MAX_PICKLE_BYTES`, :data:`MAX_PICKLE_OPS` and
    :data:`MAX_NESTING`. Reads the zip directory and the pickle record only (no tensor data)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_records(path, infos, size)
            pkl = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if len(pkl) != 1:
                raise _archive_error(path, f"it holds {len(pkl)} data.pkl records (torch.save writes exactly one)")
            if pkl[0].file_size > MAX_PICKLE_BYTES:
                raise _archive_error(path, f"its structure record is {pkl[0].file_size} bytes (at most "
                                           f"{MAX_PICKLE_BYTES} allowed; a run's checkpoint needs ~100 KB)")
            data = zf.read(pkl[0])  # checks the record's CRC-32
    except PgdatError:
        raise
    except zipfile.BadZipFile as e:
        with open(path, "rb") as f:
            legacy = f.read(2) in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
        if legacy:
            raise PgdatError(f"cannot read checkpoint {path}: it is in torch's legacy (pre-1.6) format, whose tensor "
                             "sizes cannot be checked before loading; re-save it with a current torch") from None
        raise PgdatError(f"cannot read checkpoint {path}: the file is truncated, damaged or not a torch file ({e}); "
                         "re-save it, or resume from an earlier checkpoint") from None
    except (OSError, EOFError, ValueError, NotImplementedError, struct.error, zipfile.LargeZipFile) as e:
        raise _archive_error(path, f"its zip directory is damaged ({type(e).__name__}: {e})") from None
    _check_pickle(path, data)


def _check_records(path: Path, infos: list[zipfile.ZipInfo], size: int) -> None:
    """Every record stored, unencrypted, inside the file; declared sizes add up to at most the file size."""
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise _archive_error(path, f"record {info.filename!r} is compressed or encrypted (declares "
                                       f"{info.file_size} bytes); torch.save stores records uncompressed")
        if info.file_size != info.compress_size or not 0 <= info.header_offset <= size - info.compress_size:
            raise _archive_error(path, f"record {info.filename!r} declares {info.file_size} bytes, more than the "
                                       "file holds")
        total += info.file_size
    if total > size:
        raise _archive_error(path, f"its records declare {total} bytes in a file of {size} bytes (overlapping "
                                   "records)")


_IN_PLACE = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _pop(stack: list[list], marks: list[int], before: list) -> list[list]:
    """Pop what an opcode consumes (``before``: its stack_before); returns the popped entries."""
    if pickletools.markobject in before:
        if not marks:
            raise ValueError("pop to a missing mark")
        at = marks.pop() - before.index(pickletools.markobject)
    else:
        at = len(stack) - len(before)
    if at < 0:
        raise ValueError("stack underflow")
    popped = stack[at:]
    del stack[at:]
    return popped


def _step(op: pickletools.OpcodeInfo, arg: Any, stack: list[list], marks: list[int], memo: dict[Any, list]) -> None:
    """Apply one opcode to the shadow stack. Each entry is [nesting depth, memo key]; a container changed in place
    updates its memo entry too, so a memoised object fetched again carries its current depth."""
    if op.name == "MARK":
        marks.append(len(stack))
    elif op.name in _PUT:
        key = len(memo) if op.name == "MEMOIZE" else arg
        stack[-1][1] = key
        memo[key] = stack[-1]
    elif op.name in _GET:
        stack.append(memo.get(arg, [0, None]))
    else:
        popped = _pop(stack, marks, op.stack_before)
        if op.name in _IN_PLACE:
            entry = popped[0]
            entry[0] = max(entry[0], 1 + max((e[0] for e in popped[1:]), default=0))
            stack.append(entry)
        else:
            depth = 1 + max(e[0] for e in popped) if popped else 0
            if len(op.stack_after) == 1:
                stack.append([depth, None])
            else:
                stack.extend([depth, None] for _ in op.stack_after)


def _check_pickle(path: Path, data: bytes) -> None:
    """Scan the pickle's opcodes without building anything: at most :data:`MAX_PICKLE_OPS` of them, at most
    :data:`MAX_STACK` values pending at once, and no object nested deeper than :data:`MAX_NESTING`."""
    stack: list[list] = []
    marks: list[int] = []
    memo: dict[Any, list] = {}
    try:
        for ops, (op, arg, _) in enumerate(pickletools.genops(io.BytesIO(data)), 1):
            if ops > MAX_PICKLE_OPS:
                raise _archive_error(path, f"its structure has more than {MAX_PICKLE_OPS} pickle operations")
            _step(op, arg, stack, marks, memo)
            if len(stack) > MAX_STACK:
                raise _archive_error(path, f"its structure keeps more than {MAX_STACK} values pending at once")
            if (stack and stack[-1][0] > MAX_NESTING + 8) or len(marks) > MAX_NESTING + 8:
                # + 8: a tensor's rebuild arguments nest a few levels below the dict that holds it
                raise _archive_error(path, f"its structure nests deeper than {MAX_NESTING} levels")
    except PgdatError:
        raise
    except (ValueError, IndexError) as e:
        raise _archive_error(path, f"its structure record is not a valid pickle ({e})") from None


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach()
    t = t.to_dense() if t.layout != torch.strided else t
    return memoryview(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def _walk(value: Any, h: Any, depth: int, path: set[int], count: list[int], where: str) -> None:
    """Feed a canonical encoding of ``value`` to hasher ``h`` (None: only check), bounding nesting and size."""
    count[0] += 1
    if count[0] > MAX_NODES:
        raise PgdatError(f"{where} holds more than {MAX_NODES} values (shared sub-structures counted each time)")
    if isinstance(value, torch.Tensor):
        if h is not None:
            h.update(f"T{value.dtype}{tuple(value.shape)}:".encode())
            h.update(_tensor_bytes(value))
        return
    if not isinstance(value, dict | list | tuple):
        if h is not None:
            text = (hex(value) if isinstance(value, int) else repr(value)).encode("utf-8", "surrogatepass")
            h.update(f"{type(value).__name__}{len(text)}:".encode() + text)
        return
    if depth >= MAX_NESTING:
        raise PgdatError(f"{where} nests deeper than {MAX_NESTING} levels")
    if id(value) in path:
        raise PgdatError(f"{where} contains itself (a reference cycle)")
    path.add(id(value))
    kind = "D" if isinstance(value, dict) else ("L" if isinstance(value, list) else "U")
    if h is not None:
        h.update(f"{kind}{len(value)}:".encode())
    for item in (x for kv in value.items() for x in kv) if isinstance(value, dict) else value:
        _walk(item, h, depth + 1, path, count, where)
    path.discard(id(value))


def content_digest(payload: dict[str, Any], where: str = "checkpoint") -> str:
    """SHA-256 (hex) of a checkpoint dict's content, :data:`INTEGRITY_KEY` excluded: every tensor's dtype, shape and
    bytes, every other value's type and repr, dicts in insertion order. PgdatError (naming ``where``) for a structure
    nested deeper than :data:`MAX_NESTING`, larger than :data:`MAX_NODES` values, or cyclic."""
    h = hashlib.sha256()
    _walk({k: v for k, v in payload.items() if k != INTEGRITY_KEY}, h, 0, set(), [0], where)
    return h.hexdigest()


def check_structure(payload: Any, where: str) -> None:
    """The bounds of :func:`content_digest` without hashing (checkpoints saved before hashes were added)."""
    _walk(payload, None, 0, set(), [0], where)
