"""The one lazy-export mechanism: a package names its public objects and the modules that define them, and
each module is imported on first use (``import lseg_nb`` stays fast; heavy optional modules load only when
their names are used)."""

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
