"""The one door to matplotlib: every viz module builds figures, patches and lines through these functions.

matplotlib is in the ``notebooks`` extra, so it is imported on the first drawing call, not when lseg_nb (or the
command line, which imports the figure functions) is imported: ``pip install lseg_nb`` alone can load a model
and predict, and asking it for a figure names the extra to install. Figures are built with
:class:`~matplotlib.figure.Figure` rather than ``pyplot`` (no global state, any backend, never shown twice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lseg_nb.utils.optional import import_optional

if TYPE_CHECKING:
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

__all__ = ["colormap", "figure", "line2d", "patch"]

_PURPOSE = "drawing figures (lseg_nb.viz)"


def figure(**kwargs: Any) -> Figure:
    """A new :class:`matplotlib.figure.Figure` (``kwargs`` as matplotlib's: ``figsize``, ``layout``, ...)."""
    return import_optional("matplotlib.figure", "notebooks", _PURPOSE).Figure(**kwargs)


def patch(**kwargs: Any) -> Patch:
    """A legend/key :class:`matplotlib.patches.Patch` (``color=``, ``label=``, ``hatch=``, ...)."""
    return import_optional("matplotlib.patches", "notebooks", _PURPOSE).Patch(**kwargs)


def line2d(*args: Any, **kwargs: Any) -> Line2D:
    """A :class:`matplotlib.lines.Line2D` (legend handles with markers)."""
    return import_optional("matplotlib.lines", "notebooks", _PURPOSE).Line2D(*args, **kwargs)


def colormap(name: str) -> Colormap:
    """matplotlib's registered colour map ``name`` (e.g. ``"tab10"``)."""
    return import_optional("matplotlib", "notebooks", _PURPOSE).colormaps[name]
