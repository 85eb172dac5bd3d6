"""lseg_nb's own error types, and bounded values in messages.

Every error that something the user can fix causes (a flag, a config or manifest field, a data file, a label, a
missing download, a busy folder) derives from :class:`UserError`; the CLI prints exactly those (and ``OSError``)
as one line and exits 2, while any other exception is a bug in lseg_nb and keeps its traceback. Each subclass
also derives from the builtin type callers already catch (``ValueError``, ``RuntimeError``, ...), so
``except ValueError`` around lseg_nb calls keeps working.

A message never formats an unbounded value: :func:`shorten` renders any value (a list expanded from YAML aliases,
a long string) in at most ``limit`` characters, in time bounded by its limits and not by the value's size.
"""

from __future__ import annotations

import reprlib
from typing import Any


class UserError(Exception):
    """Something the user can fix; the message names the file/field/label and the fix."""


class InputError(UserError, ValueError):
    """A value the user gave (flag, config or manifest field, label, file content) is invalid."""


class UnknownNameError(InputError, KeyError):
    """A name (model, vocabulary label) that is not one of the known ones; also a ``KeyError``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SetupError(UserError, RuntimeError):
    """This machine cannot do what was asked (no CUDA, weights not in the offline cache, a busy run folder)."""


class DivergedError(UserError, FloatingPointError):
    """Training produced a non-finite loss: a setting to change (learning rate, autocast), not a bug."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a message saying where the work stopped and how to continue it."""


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


def shorten(value: Any, limit: int = 80) -> str:
    """``repr(value)`` in at most ``limit`` characters, cut with ``...``; nested containers are walked only to a
    fixed depth and breadth (a billion-laughs list prints in microseconds)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def printable(text: str) -> str:
    """``text`` safe to print on any terminal: file names that are not valid UTF-8 (surrogate escapes from the
    file system) are shown as ``\\udcxx`` escapes instead of crashing ``print``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
