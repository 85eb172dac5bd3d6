"""Segmentation metrics from one confusion matrix: mIoU, pixel/mean accuracy, FB-IoU (binary only),
seen/unseen/harmonic IoU, Open mIoU (with a class-similarity matrix) and chance baselines.

Everything is derived from a single ``(C, C)`` confusion matrix (rows = ground truth, columns = prediction), so
metrics accumulated over a data set are exact dataset-level ratios, not means of per-image scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lseg_nb.utils.parsing import json_safe


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255, check: bool = True
) -> Tensor:
    """Count (target, prediction) pairs: ``cm[t, p]`` = number of pixels of class ``t`` predicted as ``p``.

    ``pred`` and ``target``: integer tensors of the same shape ``(...)`` (e.g. ``(B, H, W)``).
    Pixels whose target equals ``ignore_index`` or lies outside ``[0, num_classes)`` are dropped (so a restricted
    label set can be scored by mapping the other classes to ``ignore_index``). Predictions outside
    ``[0, num_classes)`` raise ``ValueError``: they indicate a label-set mismatch, not void pixels. That check
    reads the predictions on the host; ``check=False`` skips it for predictions that are in range by
    construction (an argmax over ``num_classes`` labels), so counting on a GPU never waits for it.
    Returns an int64 ``(num_classes, num_classes)`` tensor on the inputs' device.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    return confusion_matrices(pred.reshape(1, -1), target.reshape(1, -1), num_classes, ignore_index, check)[0]


def confusion_matrices(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255, check: bool = True
) -> Tensor:
    """One confusion matrix per leading index: ``(N, ...)`` inputs -> int64 ``(N, C, C)`` (see
    :func:`confusion_matrix`, which this generalises). No host synchronisation when ``check=False``."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if pred.shape != target.shape or pred.ndim < 1:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    if pred.is_floating_point() or target.is_floating_point():
        raise TypeError("pred and target must be integer class-index tensors (use logits.argmax(1) for pred)")
    n, c = pred.shape[0], num_classes
    pred, target = pred.reshape(n, -1).long(), target.reshape(n, -1).long()
    if check and pred.numel() and (pred.min() < 0 or pred.max() >= c):
        bad = sorted(set(pred.unique().tolist()) - set(range(c)))[:10]
        raise ValueError(f"predictions hold class indices {bad} outside [0, {c})")
    keep = (target != ignore_index) & (target >= 0) & (target < c)
    # dropped pixels go to one extra bin: a fixed-size count without boolean indexing (no device sync)
    offset = torch.arange(n, device=pred.device)[:, None] * (c * c)
    idx = torch.where(keep, offset + target * c + pred, n * c * c).reshape(-1)
    if idx.device.type == "cpu":
        counts = torch.bincount(idx, minlength=n * c * c + 1)
    else:  # bincount sizes its output from the maximum, which a GPU has to report to the host first
        counts = torch.zeros(n * c * c + 1, dtype=torch.long, device=idx.device)
        counts.scatter_add_(0, idx, torch.ones_like(idx))
    return counts[:-1].reshape(n, c, c)


@dataclass(frozen=True)
class SegMetrics:
    """Scores of one confusion matrix. IoU values are fractions in ``[0, 1]``; NaN where undefined.

    ``per_class_iou[c]`` is NaN when class ``c`` appears in neither target nor prediction; such classes are
    excluded from every mean. ``seen_miou``/``unseen_miou``/``harmonic_iou`` are ``None`` without a split;
    ``open_miou`` (:func:`open_confusion`) is ``None`` without a class-similarity matrix.
    """

    miou: float
    pixel_acc: float
    mean_acc: float
    fb_iou: float | None
    per_class_iou: tuple[float, ...]
    class_names: tuple[str, ...]
    num_pixels: int
    seen_miou: float | None = None
    unseen_miou: float | None = None
    harmonic_iou: float | None = None
    open_miou: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> ``None``, tuples -> lists), plus ``per_class`` as ``{name: iou}``."""
        d = {k: json_safe(v) for k, v in asdict(self).items()}
        d["per_class"] = dict(zip(self.class_names, d["per_class_iou"], strict=True))
        return d

    def iou_of(self, name: str) -> float:
        """IoU of the class called ``name``."""
        if name not in self.class_names:
            raise KeyError(f"no class {name!r}; classes: {list(self.class_names)}")
        return self.per_class_iou[self.class_names.index(name)]


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _as_numpy_cm(cm: Tensor | np.ndarray) -> np.ndarray:
    arr = cm.detach().cpu().numpy() if isinstance(cm, Tensor) else np.asarray(cm)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {arr.shape}")
    if (arr < 0).any():
        raise ValueError("confusion matrix has negative counts")
    return arr.astype(np.float64)


def _split(
    seen: Sequence[int] | None, unseen: Sequence[int] | None, c: int
) -> tuple[list[int], list[int]] | None:
    """Validate a seen/unseen split; a missing side is the complement of the given one."""
    if seen is None and unseen is None:
        return None
    for name, idx in (("seen", seen), ("unseen", unseen)):
        bad = [i for i in (idx or ()) if not 0 <= int(i) < c]
        if bad:
            raise ValueError(f"{name} class indices {bad} outside [0, {c})")
    if seen is None:
        seen = [i for i in range(c) if i not in set(unseen)]
    if unseen is None:
        unseen = [i for i in range(c) if i not in set(seen)]
    seen, unseen = list(seen), list(unseen)
    overlap = sorted(set(seen) & set(unseen))
    if overlap:
        raise ValueError(f"classes {overlap} are listed as both seen and unseen")
    return [int(i) for i in seen], [int(i) for i in unseen]


@dataclass(frozen=True, eq=False)
class ImageCounts:
    """Per-image sufficient statistics of one setting, for image-level resampling (the bootstrap).

    ``tp``, ``gt``, ``pred``: int64 ``(N, K)``: per image and class the correctly predicted pixels (the diagonal
    of its confusion matrix), the ground-truth pixels (row sums) and the predicted pixels (column sums), void
    dropped. Summed over images they give every metric of :func:`compute_metrics` except those needing the
    off-diagonal cells (FB-IoU with a background class, Open mIoU). ``ids``: the images, in order.
    """

    tp: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    ids: tuple[str, ...] = ()

    @property
    def num_images(self) -> int:
        return int(self.tp.shape[0])


def fb_iou(cm: Tensor | np.ndarray, background: int | None = None) -> float | None:
    """Foreground-background IoU (few-shot segmentation literature): the mean of background and foreground IoU.

    Defined only for a binary setting: a ``2 x 2`` matrix (class 0 = background unless ``background`` says
    otherwise), or a larger matrix with an explicit ``background`` class (every other class merged into one
    foreground). Returns ``None`` otherwise: a multi-class "mean over classes of (IoU(c) + IoU(not c)) / 2"
    is inflated by true negatives (a uniform random predictor over 20 classes scores ~0.47 on it while its
    mIoU is ~0.03), so lseg_nb does not report one.
    """
    m = _as_numpy_cm(cm)
    c = m.shape[0]
    if background is None:
        if c != 2:
            return None
        background = 0
    if not 0 <= background < c:
        raise ValueError(f"background index {background} outside [0, {c})")
    fg = [i for i in range(c) if i != background]
    merged = np.array(
        [
            [m[background, background], m[background, fg].sum()],
            [m[fg, background].sum(), m[np.ix_(fg, fg)].sum()],
        ]
    )
    return _nanmean(_iou(merged))


@dataclass(frozen=True)
class Baseline:
    """Scores of label-free predictors on the same pixels (fractions), to read a score against chance.

    ``majority_*``: every pixel predicted as the most frequent ground-truth class (``majority_class``).
    ``uniform_pixel_acc``: expected pixel accuracy of a uniform random guess over the ``num_labels`` labels;
    ``uniform_miou``: its expected mIoU (per class: expected intersection / expected union).
    """

    majority_class: str | None
    majority_miou: float
    majority_pixel_acc: float
    uniform_miou: float
    uniform_pixel_acc: float
    num_labels: int

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def chance_baseline(cm: Tensor | np.ndarray, class_names: Sequence[str]) -> Baseline:
    """Majority-class and uniform-random scores for the target distribution of a ``(C, C)`` confusion matrix.

    Uses only the row sums (ground-truth pixel counts ``n_c``, total ``N``). Majority: IoU of the majority class
    ``m`` is ``n_m / N``, every other present class scores 0, so mIoU = ``n_m / N / |present|`` and pixel
    accuracy = ``n_m / N``. Uniform over ``C`` labels: pixel accuracy ``1 / C``; class ``c`` expects
    intersection ``n_c / C`` and union ``n_c + N / C - n_c / C``. A uniform guess predicts every label, so every
    label has a union and enters the mean, as in :func:`compute_metrics`: mIoU = (sum over present classes of
    their expected IoU) / ``C`` (absent labels score 0).
    """
    m = _as_numpy_cm(cm)
    c = m.shape[0]
    n = m.sum(1)
    total = n.sum()
    present = np.flatnonzero(n > 0)
    if total == 0:
        nan = float("nan")
        return Baseline(None, nan, nan, nan, nan, c)
    maj = int(np.argmax(n))
    expected = (n[present] / c) / (n[present] + total / c - n[present] / c)
    return Baseline(
        majority_class=str(class_names[maj]),
        majority_miou=float(n[maj] / total / len(present)),
        majority_pixel_acc=float(n[maj] / total),
        uniform_miou=float(expected.sum() / c),  # the metric's own class set: every predicted label
        uniform_pixel_acc=1.0 / c,
        num_labels=c,
    )


def _iou(m: np.ndarray) -> np.ndarray:
    tp = np.diag(m)
    return _div(tp, m.sum(0) + m.sum(1) - tp)


def open_confusion(cm: Tensor | np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """The confusion matrix with soft true positives of Open mIoU (Zhou et al., "Rethinking Evaluation Metrics of
    Open-Vocabulary Segmentation", arXiv 2311.03352), whose IoUs are the Open IoUs.

    The authors' evaluator (github.com/qqlu/Entity, ``Open-Metrics/open_semanticseg/ow_sem_seg_evaluation.py``
    lines 164-169, then the plain IoU of lines 177-189) keeps its matrix as ``C[pred, gt]`` and sets
    ``tp'[g] = sum_p C[p, g] * S[p, g]`` on the diagonal and ``C[p, g] * (1 - S[p, g])`` off it. Here rows are
    the target, so for ``cm[t, p]``: the diagonal becomes ``sum_p cm[t, p] * S[p, t]`` and an error cell
    ``cm[t, p] * (1 - S[p, t])``. Row sums (ground-truth pixels) are unchanged; a pixel of ``t`` predicted as
    ``p`` is a ``S[p, t]`` true positive of ``t`` and a ``1 - S[p, t]`` false positive of ``p``.

    Args:
        cm: ``(C, C)`` counts, rows = target, columns = prediction.
        similarity: ``(C, C)`` class similarities ``S[pred, gt]`` in ``[0, 1]`` with ones on the diagonal.
    """
    m = _as_numpy_cm(cm)
    s = np.asarray(similarity, dtype=np.float64)
    if s.shape != m.shape:
        raise ValueError(f"similarity matrix {s.shape} does not match the {m.shape} confusion matrix")
    if not np.isfinite(s).all() or (s < 0).any() or (s > 1).any() or not np.allclose(np.diag(s), 1.0):
        raise ValueError("a similarity matrix holds values in [0, 1] with ones on the diagonal")
    st = s.T  # st[t, p] = S[p, t]
    out = m * (1.0 - st)
    out[np.diag_indices_from(out)] = (m * st).sum(1)
    return out


def compute_metrics(
    cm: Tensor | np.ndarray,
    class_names: Sequence[str],
    seen: Sequence[int] | None = None,
    unseen: Sequence[int] | None = None,
    background: int | None = None,
    similarity: np.ndarray | None = None,
) -> SegMetrics:
    """All scores of a ``(C, C)`` confusion matrix (rows = target, columns = prediction; void already dropped).

    ``mIoU``: mean IoU over classes with union > 0. ``pixel_acc``: trace / total. ``mean_acc``: mean recall over
    classes present in the target. ``fb_iou``: see :func:`fb_iou` (``None`` unless binary or ``background``).
    ``seen``/``unseen``: class-index split (one side may be omitted: it is the complement); ``seen_miou`` and
    ``unseen_miou`` are mIoUs over those classes of *this* matrix and ``harmonic_iou = 2su / (s + u)``.
    """
    m = _as_numpy_cm(cm)
    c = m.shape[0]
    if len(class_names) != c:
        raise ValueError(f"{len(class_names)} class names for a {c}x{c} confusion matrix")
    iou = _iou(m)
    total = m.sum()
    split = _split(seen, unseen, c)
    s = u = h = None
    if split is not None:  # an empty side (e.g. only unseen labels compete) has no mean
        s = _nanmean(iou[split[0]]) if split[0] else None
        u = _nanmean(iou[split[1]]) if split[1] else None
    if s is not None and u is not None:
        h = float("nan") if math.isnan(s) or math.isnan(u) else (2 * s * u / (s + u) if s + u > 0 else 0.0)
    return SegMetrics(
        miou=_nanmean(iou),
        pixel_acc=float(np.trace(m) / total) if total > 0 else float("nan"),
        mean_acc=_nanmean(_div(np.diag(m), m.sum(1))),
        fb_iou=fb_iou(m, background),
        per_class_iou=tuple(float(x) for x in iou),
        class_names=tuple(str(n) for n in class_names),
        num_pixels=int(total),
        seen_miou=s,
        unseen_miou=u,
        harmonic_iou=h,
        open_miou=None if similarity is None else _nanmean(_iou(open_confusion(m, similarity))),
    )
