"""The one lazy-export mechanism: a package names its public objects and the modules that define them, and
each module is imported on first use (``import lseg_nb`` stays fast; heavy optional modules load only when
their names are used). :func:`lazy_module` is the same for one module named at the top of a module that uses it
only in some of its functions (the command line's commands)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], eager: Mapping[str, Any] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a public name to the module defining it;
    ``eager``: the package's own globals (listed by ``dir`` too)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*(eager or {}), *exports})

    return __getattr__, __dir__


class _DeferredModule:
    """What :func:`lazy_module` returns: each attribute access imports the module (once; then ``sys.modules``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """``name``, imported on its first attribute use: ``batch = lazy_module("lseg_nb.apps.batch")`` at the top of a
    module, then ``batch.predict_folder(...)``. The command line uses it for everything that pulls in torch, so
    that ``lseg-nb --help``, ``lseg-nb COMMAND --help``, ``models`` and ``recipes`` start in a fraction of a
    second; tests/test_layers.py counts these calls as imports (they keep to the layers too).

    Args:
        name: the dotted module name.
    """
    return _DeferredModule(name)
