"""Command-line flags parsed with tyro, with errors as one line naming the flag.

tyro reports a bad flag or a config's failed validation by drawing a box on stderr and exiting; the CLI's
contract is one line per error (exit 2), with config fields spelled as their flags (``--model.crop-size``). An
unknown flag is named with the real flags it resembles, from the command's own dataclass: ``--data-root`` ->
``--data.data-root``, ``--stepz`` -> ``--steps``.

The configs document their fields in reST for the API pages; ``--help`` shows those docstrings with the markup
removed (while tyro builds its parser only), because docstring_parser cuts a description at a line starting with
a role such as ``:mod:`` and the literals' backquotes are noise on a terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import io
import json
import re
import sys
import typing
from collections.abc import Iterator, Sequence
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


def _dataclasses(cls: type) -> Iterator[tuple[str, type]]:
    """``(prefix, dataclass)`` of ``cls`` and of every config nested in it (``("model.text.", TextEncoderConfig)``)."""
    todo = [("", cls)]
    while todo:
        prefix, current = todo.pop()
        yield prefix, current
        hints = typing.get_type_hints(current, include_extras=True)
        for f in dataclasses.fields(current):
            hint = hints.get(f.name)
            if isinstance(hint, type) and dataclasses.is_dataclass(hint):
                todo.append((f"{prefix}{f.name}.", hint))


def known_flags(cls: type) -> list[str]:
    """Every ``--flag`` tyro makes for ``cls`` (nested configs dotted, booleans with their ``--no-`` form).

    Args:
        cls: the dataclass a command parses.
    """
    flags = []
    for prefix, current in _dataclasses(cls):
        hints = typing.get_type_hints(current, include_extras=True)
        for f in dataclasses.fields(current):
            hint = hints.get(f.name)
            extras = getattr(hint, "__metadata__", ())
            nested = isinstance(hint, type) and dataclasses.is_dataclass(hint)
            if nested or any(m in (tyro.conf.Suppress, tyro.conf.Positional) for m in extras):
                continue
            flags.append(_flag(prefix + f.name))
            if hint is bool:
                head, _, last = (prefix + f.name).rpartition(".")
                flags.append(_flag(f"{head}.no_{last}" if head else f"no_{last}"))
    return flags


def unknown_flags_message(args: Sequence[str], flags: Sequence[str], prog: str) -> str | None:
    """One line naming each unknown ``--flag`` in ``args`` and the real flags it most resembles, or ``None``
    when every flag is known. A flag matching the last part of a nested one (``--fold``, ``--data-root``) points
    to it (``--data.fold``, ``--data.data-root``); otherwise the closest spellings (difflib).

    Args:
        args: the command's arguments as typed.
        flags: the flags the command takes (:func:`known_flags` plus any it reads itself).
        prog: the command, for the pointer to its ``--help``.
    """
    known = set(flags) | {"-h", "--help"}
    unknown = [a.split("=", 1)[0] for a in args if a.startswith("--") and a.split("=", 1)[0] not in known]
    if not unknown:
        return None
    parts = []
    for flag in dict.fromkeys(unknown):
        name = flag[2:]
        nested = [f for f in flags if f.endswith("." + name) or f.endswith("." + name.replace(".", "-"))]
        guesses = nested or difflib.get_close_matches(flag, flags, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(guesses)}?)" if guesses else ""
        parts.append(f"{flag}{hint}")
    return f"unknown flag {', '.join(parts)}; `{prog} --help` lists every flag"


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring as ``--help`` shows it: reST roles and literals as plain words (``:class:`~a.b.C``` -> ``C``,
    ````lr```` -> ``lr``), so that no line starts with a role (docstring_parser would cut the description there).

    Args:
        doc: the docstring.
    """
    text = _ROLE.sub(
        lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), inspect.cleandoc(doc)
    )
    return text.replace("``", "")


@contextlib.contextmanager
def _plain_docstrings(cls: type) -> Iterator[None]:
    """While tyro builds the parser, every config's docstring in plain text (restored afterwards)."""
    saved = {c: c.__doc__ for _, c in _dataclasses(cls) if c.__doc__}
    try:
        for c, doc in saved.items():
            c.__doc__ = plain_text(doc)
        yield
    finally:
        for c, doc in saved.items():
            c.__doc__ = doc


def parse_args(
    cls: type[T], args: list[str], prog: str, default: T | None = None, extra_flags: Sequence[str] = ()
) -> T:
    """``tyro.cli`` whose parse and validation errors become one :class:`ConfigError` line naming the flag
    (tyro draws a box and exits; an unknown flag is named with the real flags it resembles); ``--help`` still
    prints (plain sentences, not reST) and exits 0.

    Args:
        cls: the dataclass to fill from the flags.
        args: the command's arguments.
        prog: the command, as usage lines and errors name it (``lseg-nb train``).
        default: the starting values (a recipe, a run's config), or ``None`` for the class defaults.
        extra_flags: flags the command reads itself before this parse (``--config``), for the unknown-flag hint.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), _plain_docstrings(cls):
            parsed = tyro.cli(cls, default=default, args=args, prog=prog)
    except SystemExit as e:
        if e.code not in (0, None):
            unknown = unknown_flags_message(args, [*known_flags(cls), *extra_flags], prog)
            raise ConfigError(unknown or _tyro_message(captured.getvalue(), cls)) from None
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
