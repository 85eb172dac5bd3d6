"""Figure of the label explorer: an image and its segmentation with free-form labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lseg_nb.viz.segmentation import overlay, palette


def plot_label_query(
    image: np.ndarray, mask: np.ndarray, labels: Sequence[str], title: str | None = None
) -> Figure:
    """Image | overlay of ``mask`` (indices into ``labels``), with a legend giving each label's pixel share."""
    mask = np.asarray(mask)
    if mask.shape != np.asarray(image).shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {np.asarray(image).shape[:2]}")
    colours = palette(len(labels))
    shares = np.bincount(mask.ravel(), minlength=len(labels)) / max(mask.size, 1)
    fig = Figure(figsize=(8.5, 3.6), layout="constrained")
    ax = fig.subplots(1, 2)
    ax[0].imshow(image)
    ax[0].set_title(title or "image", fontsize=10)
    ax[1].imshow(overlay(image, mask, colours, ignore_index=-1))
    ax[1].set_title("segmentation with your labels", fontsize=10)
    for a in ax:
        a.set_axis_off()
    handles = [
        Patch(color=colours[i] / 255, label=f"{lab} ({shares[i]:.0%})") for i, lab in enumerate(labels)
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig
