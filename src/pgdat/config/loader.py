"""YAML recipes <-> :class:`Config`: unknown keys fail with the valid ones, values are coerced to field types,
``section.key=value`` overrides apply on top, and the resolved config round-trips through YAML."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from pgdat.config.schema import Config
from pgdat.errors import PgdatError
from pgdat.threat import parse_number

RECIPES = Path(__file__).resolve().parent.parent / "configs"
# exponent floats that YAML 1.1 (PyYAML) leaves as text: 1e-3, 5E4, 1.0e3 (it wants a dot and a signed exponent)
_EXP_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")


MAX_YAML_BYTES = 1 << 20  # a recipe is a few KB
MAX_YAML_DEPTH = 32  # mappings/lists inside each other (a recipe nests 4 deep)
MAX_SEED = 2**32 - 1  # every RNG pgdat seeds (torch, numpy, random) takes [0, 2^32)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (PyYAML keeps the last one silently), aliases (``*a``:
    a few lines of them expand into gigabytes once copied) and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise PgdatError(f"YAML alias '*{event.anchor}' at line {event.start_mark.line + 1}: pgdat configs do not "
                             "take anchors and aliases (a few of them can expand into gigabytes); write the value out, "
                             "e.g. 'params: {beta: 6.0}'")
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise PgdatError(f"YAML nesting deeper than {MAX_YAML_DEPTH} levels at line "
                                 f"{self.peek_event().start_mark.line + 1}; a recipe nests like "
                                 "'method: {params: {beta: 6.0}}'")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise PgdatError(f"key '{key}' appears twice in one mapping (line {key_node.start_mark.line + 1}); "
                                 "only the last would be used, so remove one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml(text: str) -> Any:
    if len(text) > MAX_YAML_BYTES:
        raise PgdatError(f"YAML text of {len(text)} characters (at most {MAX_YAML_BYTES}; a recipe is a few KB)")
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """Parse a YAML file with the config loader's limits (no aliases, bounded size and nesting, no repeated keys);
    every failure is a one-line PgdatError naming ``path``."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_YAML_BYTES:
            raise PgdatError(f"it is {p.stat().st_size} bytes (at most {MAX_YAML_BYTES}; a config is a few KB)")
        return _yaml(p.read_text())
    except yaml.YAMLError as e:
        raise PgdatError(f"cannot parse {what} {p} as YAML: {' '.join(str(e).split())}") from None
    except UnicodeDecodeError:
        raise PgdatError(f"cannot parse {what} {p} as YAML: it is not a UTF-8 text file") from None
    except PgdatError as e:
        raise PgdatError(f"{what} {p}: {e}") from None


def _numbers(value: Any) -> Any:
    """Exponent floats written as text inside option mappings (method.params, model.kwargs, ...) -> float."""
    if isinstance(value, str) and _EXP_FLOAT.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(v) for v in value]
    return value


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` (str from the CLI, or YAML scalars)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for arg in (a for a in args if a is not type(None)):
            return _coerce(value, arg, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise PgdatError(f"{where} must be true or false (got {value!r})")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip()
                                                                          .lstrip("-").isdigit())):
            raise PgdatError(f"{where} must be an integer (got {value!r})")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise PgdatError(f"{where} must be a number (got {value!r})")
        try:
            return parse_number(value)
        except PgdatError:
            raise PgdatError(f"{where} must be a number like 0.1 or 8/255 (got {value!r})") from None
    if tp is str:
        if isinstance(value, dict | list | tuple):  # e.g. train.device=cuda: (YAML reads a mapping)
            raise PgdatError(f"{where} must be text, not a mapping or list (got {value!r})")
        return str(value)
    if origin is tuple:
        items = _yaml(value) if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            items = [items]
        elem = args[0]
        if len(args) == 2 and args[1] is Ellipsis or len(args) == 1:
            return tuple(_coerce(v, elem, where) for v in items)
        if len(items) != len(args):
            raise PgdatError(f"{where} needs {len(args)} values (got {value!r})")
        return tuple(_coerce(v, a, where) for v, a in zip(items, args, strict=True))
    if origin is dict:
        items = _yaml(value) if isinstance(value, str) else value
        if not isinstance(items, dict):
            raise PgdatError(f"{where} must be a mapping like {{width: 16}} (got {value!r})")
        return _numbers(dict(items))
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PgdatError(f"{where or 'config'} must be a mapping (got {data!r})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise PgdatError(f"unknown config key '{path}'; valid keys{' in ' + where if where else ''}: "
                             f"{', '.join(fields)}")
        tp = hints[key]
        kwargs[key] = _build(tp, value, path) if dataclasses.is_dataclass(tp) else _coerce(value, tp, path)
        if key.endswith("seed") and isinstance(kwargs[key], int) and not 0 <= kwargs[key] <= MAX_SEED:
            raise PgdatError(f"{path} must be an integer in [0, {MAX_SEED}] (got {kwargs[key]}), e.g. {key}: 0")
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    """Build a :class:`Config` from nested dicts; unknown keys raise :class:`PgdatError` naming the key."""
    return _build(Config, data or {}, "")


def config_to_dict(cfg: Any) -> dict:
    """Nested plain dict (tuples as lists) for YAML/JSON and checkpoints."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


_SECTIONS = frozenset(k for k, tp in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(tp))


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise PgdatError(f"cannot set '{key}': '{p}' is not a section")
    if node is data and isinstance(value, dict) and isinstance(node.get(key), dict) and key in _SECTIONS:
        node[key] = {**node[key], **value}  # section={k: v} sets those keys; the recipe's others stay
    else:
        node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` strings; values are parsed as YAML (``8/255`` stays text, read as a float later)."""
    for item in overrides:
        if "=" not in item:
            raise PgdatError(f"override '{item}' must look like section.key=value, e.g. train.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = _yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            reason = " ".join(str(getattr(e, "problem", None) or e).split())
            raise PgdatError(f"override '{item}': the value is not valid YAML ({reason}); quote lists and mappings "
                             "for the shell, e.g. --set 'data.transforms=[{name: label_noise, rate: 0.2}]'") from None
        except PgdatError as e:
            raise PgdatError(f"override '{item:.80}': {e}") from None
        _set_dotted(data, key.strip(), value)
    return data


def recipe_path(name_or_path: str) -> Path:
    """A YAML file path, or a recipe name under the packaged configs (e.g. ``cifar10/pgd_at_preact18``)."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    candidate = RECIPES / (name_or_path if name_or_path.endswith(".yaml") else f"{name_or_path}.yaml")
    if candidate.is_file():
        return candidate
    known = sorted(str(f.relative_to(RECIPES).with_suffix("")) for f in RECIPES.rglob("*.yaml"))
    raise PgdatError(f"config '{name_or_path}' is neither a file nor a recipe; recipes: {', '.join(known)}")


def load_config(path: str | None = None, overrides: list[str] | None = None) -> Config:
    """Load a recipe (file or packaged name; None = defaults), apply overrides, validate keys and types."""
    data: dict = {}
    if path is not None:
        p = recipe_path(path)
        data = load_yaml_file(p, "config") or {}
        if not isinstance(data, dict):
            raise PgdatError(f"{p} must be a mapping of sections like 'train: {{epochs: 5}}' (got {data!r:.80})")
    return config_from_dict(apply_overrides(data, overrides or []))
