"""The joint UMAP figure of :func:`lseg_nb.diagnostics.joint_umap`: do unseen pixels sit near their own text?

Left panel, the map: pixels coloured by class (:func:`~lseg_nb.viz.colours.label_colours`, so a class has the
same colour as in every other figure), circles for seen classes and triangles for unseen ones; each class's
pixel centroid as a large marker joined by a line (solid seen, dashed unseen) to its own text's star, so "is the
cluster near its text" is read off the line's length rather than by hunting for a star in the cloud. Text labels
are laid out by :func:`repel_labels` so they never overprint each other, even when every text lands on one
point (the modality gap of raw embeddings; ``joint_umap`` centres each modality by default to remove it).
Right panel, the number: the rank of each class's own text among all class texts by cosine to its pixel
centroid in the embedding space (1 = nearest; bars raw, dots in the centred space the map is drawn from), so
the answer does not depend on reading 2-D distances, which UMAP distorts. The key names every class with its
colour, unseen ones marked.

Label boxes are measured after a layout pass (``draw_without_rendering``), so the repel works on the real text
sizes in the final axes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lseg_nb.diagnostics.umap_projection import UmapResult
from lseg_nb.viz.colours import label_colours
from lseg_nb.viz.mpl import figure, line2d, patch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

UNSEEN_MARK = " (unseen)"


def repel_labels(
    anchors: np.ndarray, sizes: np.ndarray, pad: float = 0.006, step: float = 0.012, rings: int = 80
) -> np.ndarray:
    """Centres of label boxes near their anchors, no two boxes overlapping (all in axes fractions, 0..1).

    Greedy: label by label, the candidate centres on rings of growing radius around its anchor (24 directions
    per ring, the nearest ring first) are tried and the first is taken whose box stays inside the axes, overlaps
    no box placed before and covers no anchor point (so no label hides a star). Labels sharing one anchor thus
    fan out around it. If no candidate is free (an axes too small for its labels), the one overlapping least
    is used.

    Args:
        anchors: ``(n, 2)`` points the labels belong to.
        sizes: ``(n, 2)`` width and height of each label box.
        pad: gap kept between boxes and around anchor points.
        step: radius increment between rings.
        rings: number of rings tried.
    """
    anchors = np.asarray(anchors, dtype=float).reshape(-1, 2)
    half = np.asarray(sizes, dtype=float).reshape(-1, 2) / 2 + pad / 2
    angles = np.pi / 4 + np.arange(24) * (2 * np.pi / 24)
    unit = np.stack([np.cos(angles), np.sin(angles)], 1)
    placed = np.zeros((0, 2))
    placed_half = np.zeros((0, 2))
    for anchor, h in zip(anchors, half, strict=True):
        # the first ring just clears the anchor: the box centre is one half-box away from it
        radius = np.linalg.norm(h) + step * np.arange(rings)
        cand = (anchor + radius[:, None, None] * unit[None]).reshape(-1, 2)
        cand = np.clip(cand, h, 1 - h)  # inside the axes
        overlap = (
            np.clip(h + placed_half[None] - np.abs(cand[:, None] - placed[None]), 0, None).prod(-1).sum(1)
        )
        covers = (np.abs(cand[:, None] - anchors[None]) < h + pad).all(-1).sum(1)
        free = np.flatnonzero((overlap == 0) & (covers == 0))
        best = free[0] if len(free) else int(np.argmin(overlap + covers * h.prod()))
        placed = np.vstack([placed, cand[best]])
        placed_half = np.vstack([placed_half, h])
    return placed


def _scatter_pixels(a: Axes, result: UmapResult, pal: np.ndarray, point_size: float) -> None:
    pix = ~result.is_text
    for unseen, marker in ((False, "o"), (True, "^")):
        sel = pix & (result.is_unseen == unseen)
        a.scatter(
            *result.coords[sel].T, c=pal[result.labels[sel]], s=point_size, marker=marker, alpha=0.5, lw=0
        )


def _centroid_lines(a: Axes, result: UmapResult, pal: np.ndarray) -> None:
    centroids, texts = result.pixel_centroids(), result.text_coords
    unseen = _unseen_classes(result)
    for k, (c, t) in enumerate(zip(centroids, texts, strict=True)):
        if np.isnan(c).any():
            continue
        a.plot(*np.stack([c, t]).T, color=pal[k], lw=1.6, ls="--" if unseen[k] else "-", zorder=3)
        a.scatter(*c, color=pal[k], s=90, marker="^" if unseen[k] else "o", edgecolors="k", lw=1.0, zorder=4)
    a.scatter(*texts.T, c=pal, s=220, marker="*", edgecolors="k", linewidths=0.9, zorder=5)


def _set_limits(a: Axes, coords: np.ndarray) -> None:
    lo, hi = coords.min(0), coords.max(0)
    span = np.maximum(hi - lo, 1e-3)
    # room around the data for the labels pushed outwards
    a.set(
        xlim=(lo[0] - 0.12 * span[0], hi[0] + 0.12 * span[0]),
        ylim=(lo[1] - 0.12 * span[1], hi[1] + 0.12 * span[1]),
    )


def _place_text_labels(fig: Figure, a: Axes, result: UmapResult, pal: np.ndarray) -> None:
    names = [n + ("*" if u else "") for n, u in zip(result.class_names, _unseen_classes(result), strict=True)]
    to_axes = a.transData + a.transAxes.inverted()
    anchors = to_axes.transform(result.text_coords)
    labels = [
        a.annotate(
            name,
            xy=tuple(result.text_coords[k]),
            xytext=tuple(anchors[k]),
            textcoords="axes fraction",
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold",
            fontstyle="italic" if name.endswith("*") else "normal",
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=pal[k], lw=1.0, alpha=0.9),
            arrowprops=dict(arrowstyle="-", color="0.35", lw=0.7, shrinkA=0, shrinkB=4),
            zorder=6,
        )
        for k, name in enumerate(names)
    ]
    fig.draw_without_rendering()  # runs the layout, so the boxes below are measured in the final axes
    box = a.get_window_extent()
    # the label's visible box (text plus its rounded frame), not the annotation's extent, which adds the leader
    boxes = [t.get_bbox_patch().get_window_extent() for t in labels]
    sizes = np.array([[e.width / box.width, e.height / box.height] for e in boxes])
    for t, p in zip(labels, repel_labels(anchors, sizes), strict=True):
        t.set_position(tuple(p))


def _unseen_classes(result: UmapResult) -> list[bool]:
    unseen = set(result.labels[result.is_unseen].tolist())
    return [k in unseen for k in range(len(result.class_names))]


def _rank_panel(a: Axes, result: UmapResult, pal: np.ndarray) -> None:
    order = sorted(range(len(result.ranks)), key=lambda k: (result.ranks[k].unseen, k))
    rows = [result.ranks[k] for k in order]
    y = np.arange(len(rows))[::-1]
    a.barh(
        y,
        [r.rank for r in rows],
        color=[pal[r.index] for r in rows],
        hatch=["//" if r.unseen else "" for r in rows],
        edgecolor="k",
        lw=0.5,
    )
    a.scatter([r.rank_centred for r in rows], y, color="k", marker="D", s=16, zorder=3)
    for yi, r in zip(y, rows, strict=True):
        if r.n_pixels == 0:  # no bar: say why, rather than leave a gap that reads as rank 0
            a.text(0.2, yi, "no pixels in the sample", va="center", fontsize=7, color="0.3")
    a.set_yticks(y, [r.name + ("*" if r.unseen else "") for r in rows], fontsize=8)
    for t, r in zip(a.get_yticklabels(), rows, strict=True):
        t.set_fontstyle("italic" if r.unseen else "normal")
    k = len(result.class_names)
    a.set_xlim(0, k + 0.5)
    a.axvline(1, color="0.3", lw=0.8, ls=":")
    (s1, sn), (u1, un) = result.rank1_counts(False), result.rank1_counts(True)
    a.set_title(
        f"rank of own text (1 = nearest of {k})\nrank 1: seen {s1}/{sn}, unseen {u1}/{un}", fontsize=9
    )
    a.set_xlabel("by cosine to the class's pixel centroid", fontsize=8)


def _keys(fig: Figure, a: Axes, b: Axes, result: UmapResult, pal: np.ndarray) -> None:
    unseen = _unseen_classes(result)
    classes = [
        line2d(
            [],
            [],
            marker="^" if u else "o",
            ls="",
            color=pal[k],
            markeredgecolor="k",
            markersize=7,
            label=n + (UNSEEN_MARK if u else ""),
        )
        for k, (n, u) in enumerate(zip(result.class_names, unseen, strict=True))
    ]
    fig.legend(handles=classes, loc="outside right upper", fontsize=8, title="class (key)", title_fontsize=8)
    marks = [
        line2d([], [], marker="o", ls="", color="0.5", markersize=4, label="pixel, seen class"),
        line2d([], [], marker="^", ls="", color="0.5", markersize=4, label="pixel, unseen class (*)"),
        line2d(
            [],
            [],
            marker="o",
            ls="-",
            color="0.5",
            markeredgecolor="k",
            markersize=7,
            label="pixel centroid — own text",
        ),
        line2d(
            [], [], marker="*", ls="", color="0.5", markeredgecolor="k", markersize=11, label="label text"
        ),
    ]
    a.legend(handles=marks, fontsize=7, loc="lower left", framealpha=0.85)
    b.legend(
        handles=[
            patch(fc="0.8", ec="k", label="raw embeddings"),
            line2d([], [], marker="D", ls="", color="k", markersize=4, label="centred (the map)"),
        ],
        fontsize=7,
        loc="lower right",
    )


def plot_umap(result: UmapResult, point_size: float = 8.0, label_texts: bool = True) -> Figure:
    """Joint UMAP map (pixels, class centroids joined to their texts) beside the own-text rank of every class.

    Args:
        result: the output of :func:`~lseg_nb.diagnostics.joint_umap`.
        point_size: marker area of the pixel points.
        label_texts: name every text star (laid out so labels never overlap).
    """
    fig = figure(figsize=(12.0, 6.2), layout="constrained")
    a, b = fig.subplots(1, 2, width_ratios=[3.0, 1.1])
    pal = label_colours(result.class_names)
    _scatter_pixels(a, result, pal, point_size)
    _centroid_lines(a, result, pal)
    _set_limits(a, result.coords)
    space = (
        "each modality centred (mean subtracted, renormalised) to remove the modality gap"
        if result.centred
        else "raw embeddings (texts and pixels sit apart: the modality gap)"
    )
    a.set(xticks=[], yticks=[])
    a.set_title(
        f"UMAP of {result.n_sampled_pixels} of {result.n_input_pixels} pixels + {len(result.class_names)} "
        f"label texts\n{space}",
        fontsize=10,
    )
    _rank_panel(b, result, pal)
    _keys(fig, a, b, result, pal)
    if label_texts:
        _place_text_labels(fig, a, result, pal)
    return fig
