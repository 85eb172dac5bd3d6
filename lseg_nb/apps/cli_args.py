"""Command-line flags parsed with tyro, with errors as one line naming the flag.

tyro reports a bad flag or a config's failed validation by drawing a box on stderr and exiting; the CLI's
contract is one line per error (exit 2), with config fields spelled as their flags (``--model.crop-size``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path
from typing import TypeVar

import tyro

from lseg_nb.config import ConfigError
from lseg_nb.utils.io import file_stem

T = TypeVar("T")

_SIDES = "│┃|"
_RULE = set("─━-=+╭╮╰╯┏┓┗┛ ")


def _flag(field: str) -> str:
    """``model.crop_size`` -> ``--model.crop-size`` (tyro's spelling of a config field)."""
    return "--" + field.replace("_", "-")


def _tyro_message(text: str, cls: type) -> str:
    """tyro's error box (title, message rows, a rule, help) as one line, config fields spelled as flags.

    Box drawing differs by terminal (Unicode box, or a title and dashed rules when not on a UTF-8 terminal).
    """
    rows = []
    for line in text.splitlines():
        row = line.strip()
        row = row[1:] if row[:1] in _SIDES else row
        row = row[:-1] if row[-1:] in _SIDES else row
        if row.strip():
            rows.append(row.strip())
    title = " ".join("".join(c for c in rows[0] if c not in _RULE - {" "}).split()) if rows else ""
    body: list[str] = []
    for row in rows[1:]:
        if set(row) <= _RULE:  # a rule: the help text below it is not part of the message
            if body:
                break
            continue
        body.append(row)
    msg = " ".join(" ".join(body).split()) or title or "invalid arguments"
    # "Error parsing model: model.crop_size: must be >= 1" -> "--model.crop-size: must be >= 1"
    m = re.match(r"Error parsing ([\w.]+): ([A-Za-z_][\w.]*)(=|: )(.*)", msg)
    if m:  # a config's own check: "where" is the nested config, "field" its dotted name from that level on
        where, field, sep, rest = m.groups()
        outer = [] if where == cls.__name__ else where.split(".")
        inner = field.split(".")
        overlap = max((n for n in range(len(inner) + 1) if outer[len(outer) - n :] == inner[:n]), default=0)
        msg = f"{_flag('.'.join(outer[: len(outer) - overlap] + inner))}{sep}{rest}"
    elif msg.startswith(
        "Error parsing "
    ):  # "Error parsing --steps: invalid literal ...": tyro named the flag
        msg = msg[len("Error parsing ") :]
    return msg


def parse_args(cls: type[T], args: list[str], prog: str, default: T | None = None) -> T:
    """``tyro.cli`` whose parse and validation errors become one :class:`ConfigError` line naming the flag
    (tyro draws a box and exits); ``--help`` still prints and exits 0."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            parsed = tyro.cli(cls, default=default, args=args, prog=prog)
    except SystemExit as e:
        if e.code not in (0, None):
            raise ConfigError(_tyro_message(captured.getvalue(), cls)) from None
        sys.stderr.write(captured.getvalue())
        raise
    sys.stderr.write(captured.getvalue())  # warnings printed while parsing
    return parsed


def safe_name(text: str) -> str:
    """A file-name-safe rendering of a model spec, weights path or dataset name (one path component)."""
    return file_stem(text, "model")


def check_result_file(path: Path, identity: dict, overwrite: bool) -> None:
    """Refuse (before any work) to replace a result file that holds a different evaluation."""
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
        same = {k: old.get("identity", {}).get(k) for k in identity} == identity
    except (OSError, ValueError):
        same = False
    if not same:
        raise ConfigError(
            f"{path} holds a different evaluation (other data, split, fold or protocol): choose another --out or "
            "pass --overwrite to replace it"
        )
