"""Plotting (the only part of lseg_nb that draws). Every function returns a matplotlib Figure."""

from lseg_nb.viz.diagnostics import (
    class_palette,
    plot_confidence_map,
    plot_confusion_vs_similarity,
    plot_nearest_text_row,
    plot_neighbour_report,
    plot_reliability,
    plot_umap,
)

__all__ = [
    "class_palette",
    "plot_confidence_map",
    "plot_confusion_vs_similarity",
    "plot_nearest_text_row",
    "plot_neighbour_report",
    "plot_reliability",
    "plot_umap",
]
