"""Plotting (the only part of lseg_nb that draws). Every function returns a matplotlib Figure.

:func:`plot_ablation` is imported on first use (its report type pulls in the training pipeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lseg_nb.viz.colours import VOID_LABEL, class_palette, label_colours, label_palette
from lseg_nb.viz.diagnostics import (
    plot_confidence_map,
    plot_confusion_vs_similarity,
    plot_nearest_text_row,
    plot_neighbour_report,
    plot_reliability,
)
from lseg_nb.viz.segmentation import (
    colorize,
    overlay,
    palette,
    plot_examples,
    plot_loss_curve,
    plot_per_class_iou,
    void_patch,
)
from lseg_nb.viz.umap import plot_umap

if TYPE_CHECKING:
    from lseg_nb.viz.ablation import plot_ablation


def __getattr__(name: str) -> Any:
    if name == "plot_ablation":
        from lseg_nb.viz.ablation import plot_ablation

        return plot_ablation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "plot_ablation"])


__all__ = [
    "VOID_LABEL",
    "class_palette",
    "colorize",
    "label_colours",
    "label_palette",
    "overlay",
    "palette",
    "plot_ablation",
    "plot_confidence_map",
    "plot_confusion_vs_similarity",
    "plot_examples",
    "plot_loss_curve",
    "plot_nearest_text_row",
    "plot_neighbour_report",
    "plot_per_class_iou",
    "plot_reliability",
    "plot_umap",
    "void_patch",
]
