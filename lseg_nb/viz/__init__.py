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
from lseg_nb.viz.segmentation import colorize, overlay, palette, plot_examples, plot_loss_curve, plot_per_class_iou

__all__ = [
    "class_palette",
    "colorize",
    "overlay",
    "palette",
    "plot_confidence_map",
    "plot_confusion_vs_similarity",
    "plot_examples",
    "plot_loss_curve",
    "plot_nearest_text_row",
    "plot_neighbour_report",
    "plot_per_class_iou",
    "plot_reliability",
    "plot_umap",
]
