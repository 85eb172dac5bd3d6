"""Strict parsing of data files (configs, manifests): plain data only, duplicate keys refused, bounded size.

YAML is read with a ``SafeLoader`` subclass (no Python tags, so no code can run) that also rejects duplicate
mapping keys; JSON with an ``object_pairs_hook`` doing the same. A silently overwritten key hides typos, so both
raise :class:`DataFileError` naming the file, the key and the line where possible.

YAML aliases (``*name``) are allowed but the document they expand to is capped at :data:`MAX_YAML_NODES` values:
a few hundred bytes of nested aliases ("billion laughs") would otherwise expand to billions of values the moment
anything walks them (a copy, an error message, ``json.dumps``). The count is taken on the composed node graph,
each shared node counted once per use, in time linear in the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from lseg_nb.utils.errors import InputError, shorten

#: the most values (scalars, lists, mappings) a YAML config or manifest may expand to, aliases counted in full
MAX_YAML_NODES = 100_000


class DataFileError(InputError):
    """A data file (JSON/YAML config or manifest) is not plain, unambiguous data."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Values ``node`` expands to (an alias counts its whole target each time); stops past ``limit``."""
    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise yaml.composer.ComposerError(None, None, "an alias refers to itself", node.start_mark)
        return memo[key]
    memo[key] = -1  # in progress: a cycle through an alias
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, memo, limit)
        if total > limit:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"the document expands to more than {limit} values through its aliases (*name); write the "
                "values out or use fewer nested aliases",
                node.start_mark,
            )
    memo[key] = total
    return total


class StrictYAMLLoader(yaml.SafeLoader):
    """SafeLoader that also rejects duplicate mapping keys and caps what aliases expand to."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, MAX_YAML_NODES)
        return node

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
    except RecursionError:
        raise DataFileError(f"{source}: nested too deeply to be a config or manifest") from None
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())[:500]
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
    path = Path(os.path.expanduser(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not a text file (expected JSON or YAML)") from None
    if path.suffix in (".yaml", ".yml"):
        return parse_yaml(text, path)
    return parse_json(text, path)


def read_unique_lines(path: str | Path, what: str = "entry") -> list[str]:
    """The stripped lines of a text file where line k names item k-1 (class names, label texts). A blank line
    (dropping it would shift every later index by one) and a repeated entry are refused naming the line;
    trailing blank lines at the end of the file are fine."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not a UTF-8 text file (one {what} per line)") from None
    while lines and not lines[-1].strip():
        lines.pop()
    first: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            raise DataFileError(
                f"{path}:{n}: blank line; line k holds {what} k-1, so a blank line would shift every later one: "
                f"remove it or write the {what} there"
            )
        if name in first:
            raise DataFileError(
                f"{path}:{n}: {what} {shorten(name)} is listed again (first on line {first[name]}); each {what} "
                "must be unique"
            )
        first[name] = n
    if not first:
        raise DataFileError(f"{path}: lists no {what}")
    return list(first)


def json_safe(value: Any) -> Any:
    """Recursively turn NaN/inf floats into ``None`` and tuples into lists (strict JSON has neither)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
