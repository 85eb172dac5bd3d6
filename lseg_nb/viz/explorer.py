"""Drawing for the label explorer: overlay figure, similarity heatmaps, HTML legend and pixel table.

Label colours come from :func:`~lseg_nb.viz.colours.label_colours`, so a label has the same colour in the
widget, its figures and every other figure of the package. HTML snippets escape label text (users type it).
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lseg_nb.viz.colours import hex_colour, label_colours
from lseg_nb.viz.mpl import figure, line2d, patch
from lseg_nb.viz.segmentation import PIXELS, colorize, overlay, panel_inches

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def share_text(share: float) -> str:
    """Pixel share as shown in keys: ``0%`` only when no pixel has the label, ``<1%`` for a few pixels."""
    if share <= 0:
        return "0%"
    return "<1%" if share < 0.005 else f"{share:.0%}"


def _shares(mask: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(mask.ravel(), minlength=k)[:k] / max(mask.size, 1)


def plot_label_query(
    image: np.ndarray,
    mask: np.ndarray,
    labels: Sequence[str],
    title: str | None = None,
    omit_absent: bool = False,
) -> Figure:
    """Image | overlay | label map of ``mask`` (indices into ``labels``), with a key of each label's pixel share.

    The key's swatches are the label map's colours exactly (the overlay blends them with the image, so no swatch
    could match it); the overlay shows where the labels lie in the photograph.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` label index per pixel.
        labels: the label texts, by index.
        title: the image panel's title (e.g. the file name).
        omit_absent: labels covering no pixel leave the key and are named in one "not found" line instead;
            otherwise they stay in the key marked 0%.
    """
    mask = np.asarray(mask)
    if mask.shape != np.asarray(image).shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {np.asarray(image).shape[:2]}")
    colours = (label_colours(labels) * 255).round().astype(np.uint8)
    shares = _shares(mask, len(labels))
    width, height = panel_inches(mask.shape, 2.8)
    fig = figure(figsize=(3 * width + 2.0, height + 0.4), layout="constrained")
    ax = fig.subplots(1, 3)
    ax[0].imshow(image, interpolation=PIXELS)
    ax[0].set_title(title or "image", fontsize=10)
    ax[1].imshow(overlay(image, mask, colours, ignore_index=-1), interpolation=PIXELS)
    ax[1].set_title("segmentation with your labels", fontsize=10)
    ax[2].imshow(colorize(mask, colours, ignore_index=-1), interpolation=PIXELS)
    ax[2].set_title("label map (key colours)", fontsize=10)
    for a in ax:
        a.set_axis_off()
    shown = [i for i in range(len(labels)) if shares[i] > 0 or not omit_absent]
    handles: list = [
        patch(color=colours[i] / 255, label=f"{labels[i]} ({share_text(shares[i])})") for i in shown
    ]
    absent = [labels[i] for i in range(len(labels)) if i not in shown]
    if absent:
        # wrapped: a long list would widen the figure and shrink the panels
        note = textwrap.fill("not found: " + ", ".join(absent), 40, max_lines=6, placeholder=" ...")
        handles.append(line2d([], [], ls="", label=note))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def plot_similarity_maps(similarity: np.ndarray, labels: Sequence[str], columns: int = 4) -> Figure:
    """One heatmap per label of the cosine similarity ``(K, H, W)`` between its text and each pixel embedding.

    All panels share one colour scale (the min..max over all labels), so brighter means more similar across
    panels too; each panel is framed in its label's colour.
    """
    sim = np.asarray(similarity, dtype=float)
    if sim.ndim != 3 or sim.shape[0] != len(labels):
        raise ValueError(f"similarity must be (K={len(labels)}, H, W), got {sim.shape}")
    cols = max(1, min(columns, len(labels)))
    rows = math.ceil(len(labels) / cols)
    fig = figure(figsize=(2.3 * cols + 0.8, 2.3 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    lo, hi = float(sim.min()), float(sim.max())
    colours = label_colours(labels)
    im = None
    for k, a in enumerate(axes.flat):
        if k >= len(labels):
            a.set_axis_off()
            continue
        im = a.imshow(sim[k], cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1e-6)
        a.set_title(labels[k], fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
        for spine in a.spines.values():
            spine.set_edgecolor(colours[k])
            spine.set_linewidth(4)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85, label="cosine similarity (text, pixel)")
    return fig


def _fill(out: np.ndarray, y0: int, y1: int, x0: int, x1: int, colour: int) -> None:
    """Paint the rectangle ``y0..y1`` x ``x0..x1`` (inclusive, clipped to the image)."""
    h, w = out.shape[:2]
    ya, yb, xa, xb = max(y0, 0), min(y1, h - 1), max(x0, 0), min(x1, w - 1)
    if ya <= yb and xa <= xb:
        out[ya : yb + 1, xa : xb + 1] = colour


def mark_pixel(
    image: np.ndarray, y: int, x: int, size: int | None = None, gap: int | None = None
) -> np.ndarray:
    """Copy of an RGB uint8 image with a crosshair on pixel ``(y, x)``: white arms outlined in black (visible
    on any colour) around a gap that leaves the clicked pixel itself in view.

    ``size``: arm length from the centre, default 1/12 of the image's long side (at least 6 px), so the marker
    keeps its visible size when the browser scales the image; ``gap``: free radius at the centre (default
    ``size // 3``; pass more when the pixel is drawn enlarged). Line thickness grows with the image too.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    long_side = max(out.shape[:2])
    size = max(6, long_side // 12) if size is None else size
    gap = max(2, size // 3) if gap is None else gap
    t = max(1, long_side // 256)  # the white core is 2t + 1 px thick, its black outline t px on each side
    arms = (
        (y - size, y - gap, x - t, x + t),
        (y + gap, y + size, x - t, x + t),
        (y - t, y + t, x - size, x - gap),
        (y - t, y + t, x + gap, x + size),
    )
    for y0, y1, x0, x1 in arms:
        _fill(out, y0 - t, y1 + t, x0 - t, x1 + t, 0)
    for y0, y1, x0, x1 in arms:
        _fill(out, y0, y1, x0, x1, 255)
    return out


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer ``factor`` (small images stay crisp in the browser)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return np.repeat(np.repeat(np.asarray(image), factor, axis=0), factor, axis=1)


def legend_html(labels: Sequence[str], shares: Sequence[float]) -> str:
    """HTML key: one swatch + label + pixel share per label, in the order given (all labels, 0% included)."""
    colours = label_colours(labels)
    entries = "".join(
        f'<span class="lseg-legend-entry" style="display:inline-flex;align-items:center;margin-right:12px">'
        f'<span class="lseg-swatch" style="display:inline-block;width:14px;height:14px;margin-right:4px;'
        f'border:1px solid #333;background:{hex_colour(c)}"></span>'
        f'<span class="lseg-legend-label">{html.escape(lab)}</span>'
        f'<span class="lseg-legend-share" style="margin-left:4px;color:#555">{share_text(s)}</span></span>'
        for lab, c, s in zip(labels, colours, shares, strict=True)
    )
    return f'<div class="lseg-legend-box">{entries}</div>'


def top_labels_html(
    pixel: tuple[int, int], top: Sequence[tuple[str, float]], temperature: float, labels: Sequence[str]
) -> str:
    """HTML table of a pixel's most probable labels with their softmax probabilities at ``temperature``.

    ``labels`` is the whole label set of the query, so the swatches have the colours of the overlay.
    """
    by_label = dict(zip(labels, label_colours(labels)))
    colours = [by_label[lab] for lab, _ in top]
    rows = "".join(
        f'<tr class="lseg-top-row"><td><span style="display:inline-block;width:12px;height:12px;'
        f'background:{hex_colour(c)}"></span></td><td class="lseg-top-label">{html.escape(lab)}</td>'
        f'<td class="lseg-top-prob" style="text-align:right">{p:.1%}</td></tr>'
        for (lab, p), c in zip(top, colours, strict=True)
    )
    y, x = pixel
    return (
        f'<div class="lseg-top-box"><b>pixel (y={y}, x={x})</b>, temperature {temperature:.2f}'
        f"<table>{rows}</table></div>"
    )
