"""Plots for :mod:`lseg_nb.diagnostics`. Every function returns a :class:`matplotlib.figure.Figure`.

Figures are built with ``Figure()`` (through :mod:`lseg_nb.viz.mpl`) rather than ``pyplot`` so they work under
any backend (Agg included), are never shown twice in Jupyter (the returned figure is displayed once), and are not
kept alive by pyplot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from lseg_nb.diagnostics.calibration import CalibrationReport, TemperatureScaling
from lseg_nb.diagnostics.neighbours import NeighbourReport
from lseg_nb.diagnostics.sampling import ArrayLike
from lseg_nb.viz.colours import label_colours, void_colour
from lseg_nb.viz.mpl import figure, line2d, patch
from lseg_nb.viz.segmentation import PIXELS, class_key, panel_inches

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GROUP_COLOURS = {"seen": "tab:blue", "unseen": "tab:orange", "other": "tab:gray"}


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _grid(nrows: int, ncols: int, cell: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    fig = figure(figsize=(cell[0] * ncols, cell[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_neighbour_report(report: NeighbourReport) -> Figure:
    """Top-1 share and mean/median rank of the own label text per class, coloured seen/unseen.

    Unseen bars are annotated with the seen class they are most often confused with.
    """
    fig, ax = _grid(1, 2, (max(4.0, 0.45 * len(report.classes)), 3.6))
    rows = report.classes
    x = np.arange(len(rows))
    colours = [GROUP_COLOURS[c.group] for c in rows]
    ax[0, 0].bar(x, [c.top1 for c in rows], color=colours)
    for xi, c in zip(x, rows, strict=True):
        if c.confused_with_seen is not None:
            # inside the bar, so it never collides with the legend or the title
            ax[0, 0].text(
                xi, 0.02, f"→ {c.confused_with_seen}", ha="center", va="bottom", fontsize=7, rotation=90
            )
    ax[0, 0].set(
        ylim=(0, 1.2), ylabel="nearest text = own label", title="Top-1 in the joint space (→ confused seen)"
    )
    ax[0, 1].bar(x, [c.mean_rank for c in rows], color=colours)
    median = ax[0, 1].scatter(
        x, [c.median_rank for c in rows], color="k", marker="_", s=120, zorder=3, label="median rank"
    )
    ax[0, 1].set(ylabel="rank of own label text (1 = nearest)", title="Rank of the true label")
    # a grey swatch: the bars' colours already say seen/unseen (left key), the bar itself is the mean
    ax[0, 1].legend(handles=[patch(color="0.6", label="mean rank (bar)"), median], fontsize=8)
    for a in ax[0]:
        a.set_xticks(x, [c.name for c in rows], rotation=60, ha="right", fontsize=8)
    handles = [patch(color=v, label=k) for k, v in GROUP_COLOURS.items() if any(c.group == k for c in rows)]
    ax[0, 0].legend(handles=handles, fontsize=8, ncol=3, loc="upper left")
    return fig


def plot_confusion_vs_similarity(report: NeighbourReport) -> Figure:
    """Scatter of text-text cosine vs pixel confusion rate over ordered class pairs, with Spearman rho."""
    fig, ax = _grid(1, 1, (4.5, 3.8))
    conf, sim = report.confusion, report.text_similarity
    present = np.flatnonzero(~np.isnan(conf).any(axis=1))
    ii, jj = np.meshgrid(present, present, indexing="ij")
    keep = ii != jj
    ii, jj = ii[keep], jj[keep]
    unseen_row = np.isin(ii, report.unseen)
    a = ax[0, 0]
    a.scatter(
        sim[ii[~unseen_row], jj[~unseen_row]],
        conf[ii[~unseen_row], jj[~unseen_row]],
        s=14,
        color=GROUP_COLOURS["seen"],
        label="row class seen/other",
    )
    a.scatter(
        sim[ii[unseen_row], jj[unseen_row]],
        conf[ii[unseen_row], jj[unseen_row]],
        s=18,
        marker="^",
        color=GROUP_COLOURS["unseen"],
        label="row class unseen",
    )
    a.set(
        xlabel="text cosine similarity S[i, j]",
        ylabel="confusion rate C[i, j]",
        title=f"Spearman rho={report.spearman_rho:.2f} (Mantel permutation p={report.spearman_p:.2g}, n={report.n_pairs} pairs)",
    )
    a.legend(fontsize=8)
    return fig


def _reliability_axis(a: Axes, rep: CalibrationReport, equal_mass: bool, stage: str) -> None:
    if equal_mass:
        edges, acc, conf = rep.mass_bin_edges, rep.mass_bin_accuracy, rep.mass_bin_confidence
    else:
        edges, acc, conf = rep.bin_edges, rep.bin_accuracy, rep.bin_confidence
    left, width = edges[:-1], np.diff(edges)
    ok = ~np.isnan(acc)
    a.bar(
        left[ok],
        acc[ok],
        width=width[ok],
        align="edge",
        color="tab:blue",
        edgecolor="k",
        lw=0.5,
        label="accuracy",
    )
    low = np.minimum(acc, conf)
    a.bar(
        left[ok],
        np.abs(conf - acc)[ok],
        bottom=low[ok],
        width=width[ok],
        align="edge",
        fill=False,
        edgecolor="tab:red",
        hatch="//",
        lw=0.5,
        label="gap to confidence",
    )
    a.plot([0, 1], [0, 1], "k--", lw=1)
    ece = rep.ece_equal_mass if equal_mass else rep.ece
    a.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title=f"{rep.name}{stage}\nECE={ece:.3f}, n={rep.count}",
    )


def plot_reliability(
    reports: CalibrationReport | Mapping[str, CalibrationReport] | TemperatureScaling,
    after: Mapping[str, CalibrationReport] | None = None,
    equal_mass: bool = False,
    groups: Sequence[str] | None = None,
) -> Figure:
    """Reliability diagrams, one column per group (e.g. all / seen / unseen).

    Pass a :class:`TemperatureScaling` (or ``after=``) for a second row after temperature scaling.
    ``equal_mass`` plots the equal-mass bins instead of the equal-width ones.
    """
    temp = None
    if isinstance(reports, TemperatureScaling):
        reports, after, temp = reports.before, reports.after, reports.temperature
    if isinstance(reports, CalibrationReport):
        reports = {reports.name: reports}
    groups = list(groups or reports)
    missing = [g for g in groups if g not in reports or (after is not None and g not in after)]
    if missing:
        raise KeyError(f"groups {missing} are not in the reports (have {list(reports)})")
    stages = (
        [("", reports)]
        if after is None
        else [(" before", reports), (f" after T={temp:.2f}" if temp else " after", after)]
    )
    fig, ax = _grid(len(stages), len(groups), (3.6, 3.4))
    for r, (stage, reps) in enumerate(stages):
        for c, g in enumerate(groups):
            _reliability_axis(ax[r, c], reps[g], equal_mass, stage)
    ax[0, 0].legend(fontsize=7, loc="upper left")
    return fig


def _image(img: ArrayLike) -> np.ndarray:
    """``(3, H, W)`` tensor or ``(H, W, 3)`` array -> displayable ``(H, W, 3)`` (min-max scaled if needed)."""
    a = _np(img).astype(np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.max() > 1.0 + 1e-6 or a.min() < -1e-6:
        a = a / 255.0 if a.min() >= 0 and a.max() <= 255 else (a - a.min()) / max(float(np.ptp(a)), 1e-8)
    return np.clip(a.squeeze(), 0, 1)


ERROR_COLOUR = "#ff2d2d"  # wrong pixels: red reads against every viridis level


def plot_confidence_map(
    confidence: ArrayLike,
    images: ArrayLike | None = None,
    titles: Sequence[str] | None = None,
    errors: ArrayLike | None = None,
) -> Figure:
    """Max-softmax confidence maps ``(B, H, W)`` or ``(H, W)``, optionally beside their images, with the wrong
    pixels outlined: "is low confidence where the mistakes are?".

    With one image per map, one row per map (``[image,] confidence``); with a single image and several maps (the
    same image at two temperatures), one row: the image once, then each map. One shared colour bar.

    Args:
        confidence: ``(B, H, W)`` or ``(H, W)`` maps in [0, 1].
        images: ``(B, 3, H, W)``/``(B, H, W, 3)`` one per map, or a single ``(3, H, W)``/``(H, W, 3)`` image.
        titles: one title per map.
        errors: ``(H, W)`` or ``(B, H, W)`` boolean, True where the prediction is wrong (void False); drawn as red
            contours over the maps and counted in their titles.
    """
    conf = _np(confidence)
    conf = conf[None] if conf.ndim == 2 else conf
    imgs = None if images is None else [_image(i) for i in (images if _np(images).ndim == 4 else [images])]
    shared = imgs is not None and len(imgs) == 1 < len(conf)
    if imgs is not None and not shared and len(imgs) != len(conf):
        raise ValueError(f"got {len(imgs)} images for {len(conf)} confidence maps (give one per map, or one)")
    wrong = None if errors is None else _np(errors).astype(bool)
    if wrong is not None:
        wrong = np.broadcast_to(wrong, conf.shape) if wrong.ndim == 2 else wrong
        if wrong.shape != conf.shape:
            raise ValueError(f"errors {wrong.shape} do not match the confidence maps {conf.shape}")
    if titles is not None and len(titles) != len(conf):
        raise ValueError(f"got {len(titles)} titles for {len(conf)} confidence maps")
    cells = [(r, 0) for r in range(len(conf))] if not shared else [(0, c) for c in range(len(conf))]
    lead = 0 if imgs is None else 1
    nrows, ncols = (1, lead + len(conf)) if shared else (len(conf), lead + 1)
    width, height = panel_inches(conf.shape[1:], 2.6)
    title_lines = 2 if wrong is not None or (titles and any("\n" in t for t in titles)) else 1
    rows_inches = nrows * (height + 0.2 + 0.18 * title_lines) + (0.3 if wrong is not None else 0)
    fig = figure(figsize=(ncols * width + 1.2, rows_inches), layout="constrained")
    ax = fig.subplots(nrows, ncols, squeeze=False)
    for r in range(nrows if imgs is not None else 0):
        ax[r, 0].imshow(imgs[0 if shared else r], interpolation=PIXELS)
        ax[r, 0].set_title("image", fontsize=9)
    for k, (r, c) in enumerate(cells):
        a = ax[r, c + lead]
        im = a.imshow(conf[k], vmin=0, vmax=1, cmap="viridis", interpolation=PIXELS)
        title = titles[k] if titles else "confidence"
        if wrong is not None:
            if wrong[k].any():  # a map without mistakes has no outline (and matplotlib would warn)
                a.contour(wrong[k].astype(float), levels=[0.5], colors=ERROR_COLOUR, linewidths=0.8)
            where = conf[k][wrong[k]]
            title += (
                f"\nwrong {wrong[k].mean():.0%} (mean conf. {where.mean():.2f})"
                if where.size
                else "\nno wrong pixel"
            )
        else:
            title += f" (mean {conf[k].mean():.2f})"
        a.set_title(title, fontsize=9)
    for a in ax.flat:
        a.set_axis_off()
    fig.colorbar(im, ax=ax[:, lead:].ravel().tolist(), shrink=0.8, label="max softmax probability")
    if wrong is not None:
        fig.legend(
            handles=[line2d([], [], color=ERROR_COLOUR, lw=1.2, label="wrong prediction (outline)")],
            loc="outside lower center",
            fontsize=8,
            frameon=False,
        )
    return fig


def _colour_labels(lbl: np.ndarray, pal: np.ndarray, ignore_index: int) -> np.ndarray:
    out = pal[np.clip(lbl, 0, len(pal) - 1)]
    out[lbl == ignore_index] = void_colour(pal)
    return out


def plot_nearest_text_row(
    image: ArrayLike,
    pred: ArrayLike,
    gt: ArrayLike,
    nearest_text_map: ArrayLike,
    vocabulary: Sequence[str],
    class_names: Sequence[str],
    ignore_index: int = 255,
    unseen: Sequence[int] = (),
) -> Figure:
    """One row: image | prediction | ground truth | nearest vocabulary text, with a legend of what occurs.

    ``image`` ``(3, H, W)`` or ``(H, W, 3)`` (min-max scaled when not in [0, 1] or [0, 255]); ``pred``/``gt``
    ``(H, W)`` class indices (``ignore_index`` drawn black); ``nearest_text_map`` ``(H, W)`` vocabulary indices.

    Colours are fixed per label text (:func:`~lseg_nb.viz.colours.label_colours`), the classes coloured as in
    every other figure of their run (distractor words fit around them), so a vocabulary word that is also a
    class name has the class colour; the key marks unseen classes and has a void entry when the ground
    truth has void pixels.

    Args:
        image: the image.
        pred: predicted class per pixel.
        gt: ground-truth class per pixel.
        nearest_text_map: index into ``vocabulary`` of each pixel's nearest text.
        vocabulary: the texts of the nearest-text map (class names and distractor words).
        class_names: class names, by index.
        ignore_index: void value of ``gt``.
        unseen: indices of the unseen classes (marked "(unseen)" in the key).
    """
    pred, gt, near = (
        _np(pred).astype(np.int64),
        _np(gt).astype(np.int64),
        _np(nearest_text_map).astype(np.int64),
    )
    names = list(class_names) + [v for v in dict.fromkeys(vocabulary) if v not in class_names]
    colours = label_colours(names, first=len(class_names))  # classes as in the run's other figures
    cls_pal = colours[: len(class_names)]
    voc_pal = np.asarray([colours[names.index(v)] for v in vocabulary]).reshape(-1, 3)
    width, height = panel_inches(gt.shape, 2.6)
    fig = figure(figsize=(4 * width + 1.9, height + 0.4), layout="constrained")
    ax = fig.subplots(1, 4, squeeze=False)
    panels = [
        (_image(image), "image"),
        (_colour_labels(pred, cls_pal, ignore_index), "prediction"),
        (_colour_labels(gt, cls_pal, ignore_index), "ground truth"),
        (_colour_labels(near, voc_pal, -1), "nearest text"),
    ]
    for a, (img, title) in zip(ax[0], panels, strict=True):
        a.imshow(img, interpolation=PIXELS)
        a.set_title(title, fontsize=10)
        a.set_axis_off()
    used = sorted(
        i for i in set(np.unique(pred).tolist()) | set(np.unique(gt).tolist()) if 0 <= i < len(class_names)
    )
    handles = class_key(class_names, cls_pal, used, unseen)
    shown = {class_names[i] for i in used}
    unseen_names = {class_names[i] for i in unseen}
    for i in np.unique(near):
        if vocabulary[i] in shown:
            continue
        mark = (
            " (unseen)"
            if vocabulary[i] in unseen_names
            else ""
            if vocabulary[i] in class_names
            else " (text)"
        )
        handles.append(patch(color=voc_pal[i], label=f"{vocabulary[i]}{mark}"))
    handles += class_key(class_names, cls_pal, [], void=bool((gt == ignore_index).any()))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig
