"""Config (de)serialisation: frozen dataclasses <-> plain JSON data, and field validation.

``to_dict``/``from_dict`` convert to and from plain data (``from_dict`` names the offending field);
``load_config`` reads strict JSON/YAML (no tags, no duplicate keys, bounded aliases); :func:`check_fields`
validates a config instance on construction (literal choices, number types, finite floats), so a config built
by tyro, by ``from_dict`` or directly in Python is checked the same way. Messages show values through
:func:`~lseg_nb.utils.errors.shorten`, so a huge value costs no time and no screen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from lseg_nb.utils.errors import InputError, shorten
from lseg_nb.utils.io import atomic_write_text, user_path
from lseg_nb.utils.parsing import DataFileError, read_data_file

T = TypeVar("T")


class ConfigError(InputError):
    """A configuration value is missing, unknown or of the wrong type."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to JSON-compatible data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, _where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {shorten(value)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {shorten(value)} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Path:
        return Path(value)
    if isinstance(tp, type) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {shorten(value)}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], _where: str | None = None) -> T:
    """Build config ``cls`` from plain data; unknown or mistyped fields raise :class:`ConfigError`."""
    where = _where or cls.__name__
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {shorten(unknown)}; valid fields are {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if not str(e).startswith(where) else str(e)) from None


def _check_value(tp: Any, value: Any, where: str) -> None:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check_value(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is Literal and value not in args:
        raise ConfigError(f"{where}={shorten(value)} is not one of {list(args)}")
    if origin is tuple and isinstance(value, tuple):
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise ConfigError(f"{where} needs {len(items)} values, got {len(value)}")
        for i, (a, v) in enumerate(zip(items, value)):
            _check_value(a, v, f"{where}[{i}]")
    if tp is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"{where}={shorten(value)} is not an integer")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}={shorten(value)} is not a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where}={shorten(value)} is not a finite number")
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{where}={shorten(value)} is not a string")


def check_fields(cfg: Any) -> None:
    """Validate literal choices, number types and finiteness of every field of a config dataclass."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        _check_value(hints[f.name], getattr(cfg, f.name), f.name)


def require(ok: bool, field: str, message: str) -> None:
    """Raise :class:`ConfigError` naming ``field`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}: {message[:300]}")


def save_json(cfg: Any, path: str | Path) -> None:
    """Write a config as pretty JSON (atomically)."""
    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2) + "\n")


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config of type ``cls`` from a JSON or YAML file (strict: no tags, no duplicate keys)."""
    path = user_path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = read_data_file(path)
    except DataFileError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
