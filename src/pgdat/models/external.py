"""Models pgdat did not train: a builder in a user's Python file plus a weights file, loaded without pickle code.

``path/to/net.py:build`` names a function that takes no arguments and returns an ``nn.Module`` mapping images
(B, C, H, W) in [0,1] to logits (B, num_classes). The Python file is run as code (it is the user's own, like any
script they run); the weights are read without executing anything: ``.pt``/``.pth`` with ``torch.load(...,
weights_only=True)``, ``.safetensors`` with the safetensors library. Normalisation is either inside the model already
or given as mean/std, which become a pgdat :class:`~pgdat.models.normalize.Normalize` layer in front of it, so eps
stays in [0,1] pixel units either way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import pickle
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.models.normalize import NormalizedModel

WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")
# wrapper keys under which published checkpoints keep their state_dict (torch.save({"state_dict": ...}))
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
_EXAMPLE = "--model-file path/to/net.py:build (a function returning the nn.Module)"
_IDENT = re.compile(r"^[A-Za-z_]\w*$")


def parse_model_file(spec: str) -> tuple[Path, str]:
    """``"path/to/net.py:build"`` -> (existing .py file, function name); PgdatError naming ``--model-file``."""
    path, sep, func = str(spec).rpartition(":")
    if not sep or not path or not _IDENT.match(func):
        raise PgdatError(f"--model-file '{spec}' must be FILE.py:FUNCTION, e.g. {_EXAMPLE}")
    file = Path(path).expanduser()
    if file.suffix != ".py":
        raise PgdatError(f"--model-file '{spec}': {file} is not a Python file (.py); e.g. {_EXAMPLE}")
    if not file.is_file():
        raise PgdatError(f"--model-file '{spec}': {file} does not exist; e.g. {_EXAMPLE}")
    return file, func


def _import_builder(file: Path, func: str, spec: str) -> Any:
    """The function ``func`` of ``file``, imported under a private module name registered in ``sys.modules`` (as
    dataclasses and pickling need), with its folder first on sys.path while it runs so it may import neighbours."""
    name = f"_pgdat_external_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(file.resolve().parent))
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise PgdatError(f"--model-file '{spec}': importing {file} failed with {type(e).__name__}: {e}") from e
    finally:
        if str(file.resolve().parent) in sys.path:  # unless the file took it off itself
            sys.path.remove(str(file.resolve().parent))
    builder = getattr(module, func, None)
    if not callable(builder):
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == name)
        raise PgdatError(f"--model-file '{spec}': {file} has no function '{func}'; its functions: "
                         f"{', '.join(found) or 'none'}")
    return builder


def build_external(spec: str) -> nn.Module:
    """Import ``FILE.py:FUNCTION`` and call ``FUNCTION()``; the result must be an ``nn.Module``."""
    file, func = parse_model_file(spec)
    builder = _import_builder(file, func, spec)
    try:
        net = builder()
    except TypeError as e:
        raise PgdatError(f"--model-file '{spec}': {func}() must take no arguments and return the model "
                         f"({e}); wrap it, e.g. def build(): return WideResNet(depth=28, widen_factor=10)") from e
    if not isinstance(net, nn.Module):
        raise PgdatError(f"--model-file '{spec}': {func}() returned a {type(net).__name__}, expected a "
                         "torch.nn.Module mapping images (B, C, H, W) in [0,1] to logits")
    return net


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded .pt object: the dict itself, or the one under a :data:`STATE_DICT_KEYS` key;
    a ``module.`` prefix that every key carries (nn.DataParallel) is dropped."""
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [k for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)]
        if not inner:
            raise PgdatError(f"--weights {path}: expected a state_dict (names -> tensors) or a dict holding one under "
                             f"{', '.join(STATE_DICT_KEYS)}; found keys {', '.join(map(str, list(obj)[:8]))}")
        obj = obj[inner[0]]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PgdatError(f"--weights {path}: holds a {type(obj).__name__}, not a state_dict of tensors; save it "
                         "with torch.save(model.state_dict(), 'w.pt') or safetensors.torch.save_file")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``.pt``/``.pth`` (``weights_only=True``: a file that would run code is refused) or
    ``.safetensors``, on the CPU; PgdatError naming ``--weights`` otherwise."""
    p = Path(path).expanduser()
    if p.suffix not in WEIGHT_SUFFIXES:
        raise PgdatError(f"--weights {p}: unknown weights format '{p.suffix}'; give a {', '.join(WEIGHT_SUFFIXES)} "
                         "file, e.g. --weights net.safetensors")
    if not p.is_file():
        raise PgdatError(f"--weights {p} does not exist; give a {', '.join(WEIGHT_SUFFIXES)} file")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except (SafetensorError, OSError) as e:
            raise PgdatError(f"--weights {p}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PgdatError(f"--weights {p}: refused, the file holds Python objects that would execute code when "
                         "loaded; re-save only the weights: torch.save(model.state_dict(), 'w.pt')") from None
    except (RuntimeError, EOFError) as e:
        raise PgdatError(f"--weights {p}: not a readable torch file ({str(e).splitlines()[0]})") from None
    return _unwrap(obj, p)


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], weights: Path) -> None:
    """``net.load_state_dict(state)`` strictly; a mismatch is a PgdatError listing the first differing names."""
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{what} {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                 for what, names in (("missing", missing), ("unexpected", unexpected), ("shape differs:", shapes))
                 if names]
        raise PgdatError(f"--weights {weights} does not fit the model from --model-file ({'; '.join(parts)}); "
                         "give the weights saved from this architecture")
    net.load_state_dict(state)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_external_model(spec: str, weights: str | Path | None, *, in_channels: int,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build ``FILE.py:FUNCTION``, load ``weights`` (None: keep the builder's own), put a Normalize(mean, std)
    layer in front when given (else identity: the model normalises itself), eval mode on ``device``.

    in_channels: channels of the images it will see (checked on every forward). Returns the model, which maps
    (B, in_channels, H, W) in [0,1] to logits, and a JSON-able description (file, function, class, weights and
    their SHA-256, mean/std) for results and claims.
    """
    net = build_external(spec)
    info: dict[str, Any] = {"name": "external", "model_file": spec, "architecture": type(net).__name__,
                            "weights": None, "weights_sha256": None,
                            "mean": list(mean) if mean is not None else None,
                            "std": list(std) if std is not None else None}
    if weights is not None:
        state = load_weights(weights)
        _load_into(net, state, Path(weights))
        info["weights"], info["weights_sha256"] = str(weights), file_sha256(Path(weights).expanduser())
    model = NormalizedModel(net, mean, std, in_channels=in_channels)
    return model.to(device).eval(), info


def check_external_output(model: nn.Module, x: torch.Tensor, num_classes: int, data: str) -> None:
    """One forward pass on ``x`` (B, C, H, W): the logits must be (B, num_classes) of dataset ``data``."""
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0], num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PgdatError(f"the model from --model-file returned {shape} for {x.shape[0]} images, but --data {data} "
                         f"needs logits of shape ({x.shape[0]}, {num_classes}): one score per class")
