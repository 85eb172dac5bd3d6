"""Optional dependencies: one clear error naming the extra to install.

``pip install lseg_nb`` alone builds, loads, trains, evaluates and predicts; what only some users need lives in
extras (``pyproject.toml``): ``notebooks`` (matplotlib for every figure, JupyterLab, the label-explorer widgets),
``diagnostics`` (scipy, scikit-learn, umap-learn), ``minilm`` (sentence-transformers and the offline MiniLM copy),
``coco`` (pycocotools). Modules that need one import it inside the function that uses it, through
:func:`import_optional`, so that importing lseg_nb never requires an extra and a missing one fails with the
``pip install`` line instead of a bare ``ModuleNotFoundError`` from deep inside a call.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependencyError", "import_optional"]


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def import_optional(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingDependencyError` naming ``pip install 'lseg_nb[extra]'``.

    Args:
        module: dotted module name, e.g. ``"matplotlib.figure"``.
        extra: the lseg_nb extra that installs it (``notebooks``, ``diagnostics``, ``minilm``, ``coco``).
        purpose: what needs it, for the message (e.g. ``"plotting"``).

    Only a missing ``module`` (or one of its parent packages) becomes the one-line error; an import error
    raised from inside an installed package is a broken installation and keeps its traceback.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        parts = module.split(".")
        if e.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise
        raise MissingDependencyError(
            f"{purpose} needs the Python package {parts[0]!r}, which is not installed: "
            f"pip install 'lseg_nb[{extra}]' (or pip install -e '.[dev]' in a checkout for everything)"
        ) from None
