"""Segmentation figures: colour overlays, image/prediction/ground-truth grids, per-class IoU bars, loss curves.

Class colours are fixed per label text (:func:`lseg_nb.viz.colours.label_colours`).

Every function returns a matplotlib ``Figure`` built without pyplot (no global state, never shown twice), so
notebooks display it and scripts save it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lseg_nb.viz.colours import VOID_LABEL, class_palette, label_palette, palette
from lseg_nb.viz.mpl import figure, patch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
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
    "void_patch",
]


def colorize(mask: np.ndarray, colours: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Class-index mask ``(H, W)`` -> RGB uint8; ``ignore_index`` pixels are black."""
    mask = np.asarray(mask)
    out = np.zeros((*mask.shape, 3), dtype=np.uint8)
    valid = (mask != ignore_index) & (mask >= 0) & (mask < len(colours))
    out[valid] = colours[mask[valid]]
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


def void_patch(label_map: bool = False) -> Patch:
    """Legend entry for void pixels: untinted in overlays (hatched swatch), black in label maps (``label_map``)."""
    if label_map:
        return patch(facecolor="black", edgecolor="black", label=VOID_LABEL)
    return patch(facecolor="none", edgecolor="black", hatch="///", label=f"{VOID_LABEL}: untinted")


def _legend(
    ax: Axes, names: Sequence[str], colours: np.ndarray, present: Sequence[int], unseen: set[int], void: bool
) -> None:
    handles = [
        patch(color=colours[i] / 255, label=f"{names[i]}{' (unseen)' if i in unseen else ''}")
        for i in present
    ]
    handles += [void_patch()] if void else []
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)


def plot_examples(
    examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    unseen: Sequence[int] = (),
    ignore_index: int = 255,
    extra: Sequence[tuple[str, np.ndarray]] | None = None,
) -> Figure:
    """Rows of image / prediction overlay / ground-truth overlay for ``(image, pred, target)`` triples.

    Each row's key lists the classes present in its prediction or ground truth, plus a void entry when the
    ground truth has ``ignore_index`` pixels.
    """
    colours = label_palette(class_names)
    rows = max(1, len(examples))
    fig = figure(figsize=(10, 3.2 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    for r, (image, pred, target) in enumerate(examples):
        present = sorted((set(np.unique(target).tolist()) | set(np.unique(pred).tolist())) - {ignore_index})
        panels = [
            ("image", image),
            ("prediction", overlay(image, pred, colours)),
            ("ground truth", overlay(image, target, colours, ignore_index=ignore_index)),
        ]
        for ax, (title, img) in zip(axes[r], panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        void = bool((np.asarray(target) == ignore_index).any())
        _legend(axes[r, 2], class_names, colours, present, set(unseen), void)
    fig.tight_layout()
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
    ax.legend(
        handles=[patch(color="tab:blue", label="seen"), patch(color="tab:orange", label="unseen (*)")],
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
