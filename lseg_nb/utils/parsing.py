"""Strict parsing of data files (configs, manifests): plain data only, duplicate keys refused.

YAML is read with a ``SafeLoader`` subclass (no Python tags, so no code can run) that also rejects duplicate
mapping keys; JSON with an ``object_pairs_hook`` doing the same. A silently overwritten key hides typos, so both
raise :class:`DataFileError` naming the file, the key and the line where possible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class DataFileError(ValueError):
    """A data file (JSON/YAML config or manifest) is not plain, unambiguous data."""


class StrictYAMLLoader(yaml.SafeLoader):
    """SafeLoader that also rejects duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DataFileError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_yaml(text: str, source: str | Path) -> Any:
    """Plain data from YAML text; tags, syntax errors and duplicate keys raise :class:`DataFileError`."""
    try:
        return yaml.load(text, Loader=StrictYAMLLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise DataFileError(
            f"{source}: not a plain-data YAML file ({msg}); configs and manifests are data only "
            "(no !!python tags, no duplicate keys)"
        ) from None


def parse_json(text: str, source: str | Path) -> Any:
    """Data from JSON text; syntax errors and duplicate keys raise :class:`DataFileError`."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise DataFileError(f"{source}: not valid JSON ({e})") from None
    except DataFileError as e:
        raise DataFileError(f"{source}: {e}; each key may appear once") from None


def read_data_file(path: str | Path) -> Any:
    """Parse a ``.json``/``.yaml``/``.yml`` file strictly (YAML by suffix, JSON otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not a text file (expected JSON or YAML)") from None
    if path.suffix in (".yaml", ".yml"):
        return parse_yaml(text, path)
    return parse_json(text, path)


def json_safe(value: Any) -> Any:
    """Recursively turn NaN/inf floats into ``None`` and tuples into lists (strict JSON has neither)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
