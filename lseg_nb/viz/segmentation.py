"""Segmentation figures: colour overlays, image/prediction/ground-truth grids, per-class IoU bars, loss curves.

Class colours are fixed per label text (:func:`lseg_nb.viz.colours.label_colours`). Figures for papers:
prediction and ground truth are drawn as label maps, whose colours are exactly the key's (a blend over the image
would not match any swatch), beside the image itself; a figure has one key for all its rows, each class once,
unseen classes marked; panels take the images' aspect ratio (:func:`panel_inches`), so landscape images leave no
large gaps.

Every function returns a matplotlib ``Figure`` built without pyplot (no global state, never shown twice), so
notebooks display it and scripts save it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lseg_nb.viz.colours import VOID_LABEL, class_palette, label_palette, palette, void_colour
from lseg_nb.viz.mpl import figure, patch

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

__all__ = [
    "class_palette",
    "colorize",
    "overlay",
    "palette",
    "plot_examples",
    "plot_loss_curve",
    "plot_per_class_iou",
    "panel_inches",
    "void_patch",
]

PANEL_HEIGHT = 2.4  # inches per image row: three panels and a key fit a page width for 4:3 images
# imshow interpolation of every image panel: PDF and SVG embed the image's own pixels instead of a copy resampled
# at the figure's dpi (exact, and a 4-row example grid writes its PDF in 1.2 s instead of 5.4 s)
PIXELS = "none"


def colorize(mask: np.ndarray, colours: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Class-index mask ``(H, W)`` -> RGB uint8; ``ignore_index`` pixels in :func:`void_colour` (black, or VOC's
    void colour when a class is black)."""
    mask = np.asarray(mask)
    out = np.zeros((*mask.shape, 3), dtype=np.uint8)
    valid = (mask != ignore_index) & (mask >= 0) & (mask < len(colours))
    out[valid] = colours[mask[valid]]
    out[mask == ignore_index] = (void_colour(colours) * 255).round().astype(np.uint8)
    return out


def overlay(
    image: np.ndarray, mask: np.ndarray, colours: np.ndarray, alpha: float = 0.55, ignore_index: int = 255
) -> np.ndarray:
    """Blend a colourised mask over an RGB uint8 image (ignored pixels keep the image)."""
    image = np.asarray(image, dtype=np.float32)
    col = colorize(mask, colours, ignore_index).astype(np.float32)
    keep = (np.asarray(mask) == ignore_index)[..., None]
    out = np.where(keep, image, (1 - alpha) * image + alpha * col)
    return out.clip(0, 255).astype(np.uint8)


def void_patch(label_map: bool = False, colour: Sequence[float] | None = None) -> Patch:
    """Legend entry for void pixels: untinted in overlays (hatched swatch), ``colour`` (default black) in label
    maps (``label_map``)."""
    if label_map:
        face = (0.0, 0.0, 0.0) if colour is None else tuple(colour)
        return patch(facecolor=face, edgecolor="black", label=VOID_LABEL)
    return patch(facecolor="none", edgecolor="black", hatch="///", label=f"{VOID_LABEL}: untinted")


def panel_inches(
    shape: Sequence[int], height: float = PANEL_HEIGHT, max_aspect: float = 3.0
) -> tuple[float, float]:
    """``(width, height)`` in inches of a panel showing an image of ``shape`` ``(H, W, ...)``.

    Args:
        shape: the image's array shape, rows first.
        height: panel height in inches.
        max_aspect: the widest panel drawn, as width / height (a panorama is letterboxed beyond it).
    """
    h, w = int(shape[0]), int(shape[1])
    return height * min(max(w / max(h, 1), 1 / max_aspect), max_aspect), height


def class_key(
    names: Sequence[str],
    colours: np.ndarray,
    present: Sequence[int],
    unseen: Sequence[int] = (),
    void: bool = False,
    label_map: bool = True,
) -> list[Patch]:
    """Legend handles: one swatch per present class (``"name (unseen)"`` for unseen ones), then void if any.

    Args:
        names: class names, by index.
        colours: ``(K, 3)`` RGB, uint8 or in [0, 1], by index.
        present: the class indices to list, in order.
        unseen: class indices to mark as unseen.
        void: add the void entry.
        label_map: void is drawn black (label maps) rather than left untinted (overlays).
    """
    rgb = np.asarray(colours, dtype=float)
    rgb = rgb / 255 if rgb.max(initial=0) > 1 else rgb
    marked = set(unseen)
    handles = [patch(color=rgb[i], label=f"{names[i]}{' (unseen)' if i in marked else ''}") for i in present]
    return handles + ([void_patch(label_map, void_colour(rgb))] if void else [])


def plot_examples(
    examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    unseen: Sequence[int] = (),
    ignore_index: int = 255,
) -> Figure:
    """Rows of image / prediction / ground truth for ``(image, pred, target)`` triples, with one shared key.

    Prediction and ground truth are label maps in the class colours (void black); the key lists every class
    present in any prediction or ground truth, unseen classes marked, plus void when any ground truth has
    ``ignore_index`` pixels.

    Args:
        examples: ``(image (H, W, 3) uint8, pred (H, W), target (H, W))`` per row.
        class_names: class names, by index.
        unseen: indices of the unseen classes.
        ignore_index: the void value of the targets.
    """
    colours = label_palette(class_names)
    rows = max(1, len(examples))
    shape = examples[0][0].shape if examples else (1, 1)
    width, height = panel_inches(shape)
    fig = figure(figsize=(3 * width + 1.9, rows * (height + 0.3)), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    present: set[int] = set()
    void = False
    for r, (image, pred, target) in enumerate(examples):
        present |= (set(np.unique(target).tolist()) | set(np.unique(pred).tolist())) - {ignore_index}
        void |= bool((np.asarray(target) == ignore_index).any())
        panels = [
            ("image", image),
            ("prediction", colorize(pred, colours, ignore_index)),
            ("ground truth", colorize(target, colours, ignore_index)),
        ]
        for ax, (title, img) in zip(axes[r], panels, strict=True):
            ax.imshow(img, interpolation=PIXELS)
            ax.set_title(title, fontsize=10)
    for ax in axes.flat:
        ax.axis("off")
    handles = class_key(class_names, colours, sorted(present), unseen, void)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def plot_per_class_iou(
    per_class_iou: Sequence[float | None],
    class_names: Sequence[str],
    unseen: Sequence[int] = (),
    title: str = "per-class IoU",
) -> Figure:
    """Horizontal bars of per-class IoU (fractions, drawn in % like the tables), unseen classes highlighted;
    absent classes (NaN/None) marked n/a. The key sits outside the axes, so it never covers a bar or its value."""
    unseen_set = set(unseen)
    vals = 100 * np.array([np.nan if v is None else v for v in per_class_iou], dtype=float)
    order = np.arange(len(class_names))
    fig = figure(figsize=(7, 0.32 * len(class_names) + 1.2))
    ax = fig.subplots()
    colours = ["tab:orange" if i in unseen_set else "tab:blue" for i in order]
    ax.barh(order, np.nan_to_num(vals), color=colours)
    for i, v in zip(order, vals):
        ax.text(
            1 if np.isnan(v) else v + 1,
            i,
            "n/a" if np.isnan(v) else f"{v:.1f}",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(
        order, [f"{n}{' *' if i in unseen_set else ''}" for i, n in enumerate(class_names)], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 108)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title)
    drawn = set(colours)  # only the groups drawn: an unseen-only chart has no "seen" swatch
    keys = [("tab:blue", "seen"), ("tab:orange", "unseen (*)")]
    ax.legend(
        handles=[patch(color=c, label=name) for c, name in keys if c in drawn],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_loss_curve(records: Sequence[dict], run_name: str | None = None) -> Figure:
    """Training loss (left axis) and learning rate (right axis) against the optimiser step, from
    ``metrics.jsonl`` records (evaluation records are skipped); every line is in the legend and the title names
    ``run_name``."""
    logged = [r for r in records if "loss" in r]
    steps = [r["step"] for r in logged]
    fig = figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    marker = "." if len(steps) <= 30 else None  # short runs: show the logged points themselves
    lines = ax.plot(
        steps, [r["loss"] for r in logged], color="tab:blue", marker=marker, label="training loss"
    )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (per-pixel cross-entropy)", color="tab:blue")
    if any("lr" in r for r in logged):
        ax2 = ax.twinx()
        lines += ax2.plot(
            [r["step"] for r in logged if "lr" in r],
            [r["lr"] for r in logged if "lr" in r],
            color="tab:gray",
            linestyle="--",
            label="learning rate (right axis)",
        )
        ax2.set_ylabel("learning rate", color="tab:gray")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    if not logged:
        ax.text(0.5, 0.5, "no training steps logged yet", ha="center", va="center", transform=ax.transAxes)
    ax.legend(handles=lines, loc="upper right", fontsize=8)
    ax.set_title(
        f"training loss and learning rate: {run_name}" if run_name else "training loss and learning rate"
    )
    fig.tight_layout()
    return fig
