"""Confidence intervals by resampling images (dense protocol) or episodes (episodic protocol), and the paired
comparison of two models scored on the same images.

Why images, not pixels: pixels of one image are strongly correlated, so a pixel-level interval would be far too
narrow; the image (the episode) is the independent unit. A resample draws ``N`` of the ``N`` images with
replacement (seeded: ``numpy.random.default_rng(seed)``), sums their per-image counts
(:class:`~lseg_nb.engine.metrics.ImageCounts`: true positives, ground-truth and predicted pixels per class) and
recomputes every metric exactly as from the confusion matrix (IoU = tp / (gt + pred - tp), means over classes
with a union, seen / unseen / harmonic). The interval is the percentile interval of the resampled values
(2.5 and 97.5 % by default). Resampled sums are a matrix product of the ``(R, N)`` multiplicities with the
``(N, K)`` counts, so memory is ``R x (N + K)`` numbers, never ``R x N x K``.

:func:`paired_difference` resamples the same images for both models and reports the mean difference of a
metric, its percentile interval and a two-sided bootstrap p-value (twice the smaller share of resampled
differences on either side of zero), so "A beats B on this fold" is a tested statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lseg_nb.engine.metrics import ImageCounts
from lseg_nb.utils.errors import InputError

METRICS = ("miou", "pixel_acc", "seen_miou", "unseen_miou", "harmonic_iou")
__all__ = ["PairedDifference", "count_metrics", "episodic_intervals", "image_intervals", "paired_difference"]


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(R, n)`` multiplicities of ``R`` resamples of ``n`` units drawn with replacement (seeded)."""
    if n < 1:
        raise InputError("a bootstrap needs at least one image")
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    weights = np.zeros((resamples, n), np.int64)
    np.add.at(weights, (np.arange(resamples)[:, None], draws), 1)
    return weights


def count_metrics(
    tp: np.ndarray,
    gt: np.ndarray,
    pred: np.ndarray,
    seen: Sequence[int] | None = None,
    unseen: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Metrics of summed counts ``(R, K)`` (one row per resample): ``miou``, ``pixel_acc``, per-class ``iou``
    ``(R, K)`` (NaN without a union) and, with a split, ``seen_miou``, ``unseen_miou``, ``harmonic_iou``."""
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        total = gt.sum(1)
        out = {"iou": iou, "miou": _side(iou, range(iou.shape[1]))}
        out["pixel_acc"] = np.where(total > 0, tp.sum(1) / np.maximum(total, 1), np.nan)
        if seen is not None or unseen is not None:
            s, u = _side(iou, seen), _side(iou, unseen)
            harmonic = np.where(s + u > 0, 2 * s * u / np.where(s + u > 0, s + u, 1), 0.0)
            out |= {
                "seen_miou": s,
                "unseen_miou": u,
                "harmonic_iou": np.where(np.isnan(s) | np.isnan(u), np.nan, harmonic),
            }
    return out


def _side(iou: np.ndarray, cols: Sequence[int] | None) -> np.ndarray:
    if not cols:
        return np.full(len(iou), np.nan)
    sub = iou[:, list(cols)]
    valid = ~np.isnan(sub)
    return np.where(valid.any(1), np.where(valid, sub, 0).sum(1) / np.maximum(valid.sum(1), 1), np.nan)


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def image_intervals(
    counts: ImageCounts,
    class_names: Sequence[str],
    seen: Sequence[int] | None = None,
    unseen: Sequence[int] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Percentile intervals (fractions) of every metric of one setting by an image-level bootstrap:
    ``{miou, pixel_acc, [seen_miou, unseen_miou, harmonic_iou], per_class: {name: [lo, hi]}, method}``."""
    w = resample_weights(counts.num_images, resamples, seed)
    sums = [w @ counts.tp, w @ counts.gt, w @ counts.pred]
    m = count_metrics(*sums, seen=seen, unseen=unseen)
    out: dict[str, Any] = {k: _interval(m[k], level) for k in METRICS if k in m}
    out["per_class"] = {str(n): _interval(m["iou"][:, c], level) for c, n in enumerate(class_names)}
    out["method"] = _method("image", resamples, seed, level, counts.num_images)
    return out


def _method(unit: str, resamples: int, seed: int, level: float, n: int) -> str:
    return f"{unit}-level percentile bootstrap: {resamples} resamples of the {n} {unit}s, seed {seed}, {level:.0%}"


def episodic_intervals(
    class_ids: np.ndarray,
    intersection: np.ndarray,
    union: np.ndarray,
    fold_classes: Sequence[int],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Intervals (percent, as the episodic scores) of HSNet's mIoU and FB-IoU by resampling episodes.

    ``class_ids`` ``(E,)`` 1-based; ``intersection``/``union`` ``(E, 2)`` (background, foreground) per served
    episode; ``fold_classes``: the fold's class ids. mIoU = mean over the fold's classes of foreground
    intersection / max(union, 1) (HSNet), FB-IoU = mean of background and foreground IoU over all episodes."""
    e = len(class_ids)
    w = resample_weights(e, resamples, seed).astype(np.float64)
    onehot = (np.asarray(class_ids)[:, None] == np.asarray(fold_classes)[None, :]).astype(np.float64)
    inter_fg = w @ (onehot * intersection[:, 1:2])
    union_fg = w @ (onehot * union[:, 1:2])
    miou = (inter_fg / np.maximum(union_fg, 1)).mean(1) * 100
    fb = ((w @ intersection) / np.maximum(w @ union, 1)).mean(1) * 100
    return {"miou": _interval(miou, level), "fb_iou": _interval(fb, level),
            "method": _method("episode", resamples, seed, level, e)}  # fmt: skip


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` of one metric on the same images: the point difference, its percentile interval, a two-sided
    bootstrap p-value and how it was computed (all metric values are fractions)."""

    metric: str
    a: float
    b: float
    difference: float
    interval: tuple[float, float]
    p_value: float
    method: str

    def line(self) -> str:
        lo, hi = (100 * x for x in self.interval)
        return (
            f"{self.metric}: {100 * self.a:.1f} vs {100 * self.b:.1f}, difference {100 * self.difference:+.1f} "
            f"[{lo:+.1f}, {hi:+.1f}], p = {self.p_value:.3g} ({self.method})"
        )


def paired_difference(
    a: ImageCounts,
    b: ImageCounts,
    metric: str = "miou",
    seen: Sequence[int] | None = None,
    unseen: Sequence[int] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Compare two models' scores of one setting on the same images (same ids, same order, same classes)."""
    if a.ids and b.ids and tuple(a.ids) != tuple(b.ids):
        raise InputError(
            "the two results were scored on different images: compare results of the same data and split"
        )
    if a.tp.shape != b.tp.shape:
        raise InputError(
            f"the two results differ in shape {a.tp.shape} vs {b.tp.shape}: same images and classes needed"
        )
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    point = [count_metrics(c.tp.sum(0)[None], c.gt.sum(0)[None], c.pred.sum(0)[None], seen, unseen)[metric][0]
             for c in (a, b)]  # fmt: skip
    w = resample_weights(a.num_images, resamples, seed)
    va, vb = (count_metrics(w @ c.tp, w @ c.gt, w @ c.pred, seen, unseen)[metric] for c in (a, b))
    diff = (va - vb)[~(np.isnan(va) | np.isnan(vb))]
    if diff.size == 0 or np.isnan(point).any():
        raise InputError(f"{metric} is undefined on these images (no class of the setting has a union)")
    p = min(1.0, 2 * min(float((diff <= 0).mean()), float((diff >= 0).mean())))
    lo, hi = _interval(diff, level)
    return PairedDifference(metric, float(point[0]), float(point[1]), float(point[0] - point[1]),
                            (float(lo), float(hi)), p, _method("image", resamples, seed, level, a.num_images))  # fmt: skip
