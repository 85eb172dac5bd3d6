"""Seen-class bias calibration for the generalised (all-labels) zero-shot setting.

A model trained on seen classes scores them higher than any unseen label, so when every label competes the
unseen classes are rarely predicted (unseen mIoU near 0). Calibrated stacking (Chao et al., ECCV 2016) subtracts
one constant ``offset`` from every seen label's logit before the argmax. The offset is fitted on the validation
split (the one maximising the harmonic mean of seen and unseen mIoU there) and then applied unchanged to the test
split, so no test label is used. ``offset = 0`` is the uncalibrated model.

Every offset of the grid is scored from ONE inference pass, and the offsets share one comparison table per pixel
(:class:`~lseg_nb.engine.scoring.OffsetSweepAccumulator`) instead of an argmax and a confusion matrix each, so
the fit costs about one ordinary evaluation of the validation split; its line (:meth:`SeenOffsetFit.line`) says
what it cost.

Logits here are the model's: ``logit_scale * cosine`` (1/0.07 = 14.3 by default), so offsets are in those units.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData
from lseg_nb.engine.metrics import compute_metrics
from lseg_nb.engine.postprocess import model_logit_scale
from lseg_nb.engine.scoring import Setting, score_settings
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.parsing import json_safe


@dataclass(frozen=True, eq=False)
class SeenOffsetFit:
    """The fitted seen-class logit offset and the curve it was chosen from (on the fitting split).

    ``offsets[g]`` scored ``seen_miou[g]``, ``unseen_miou[g]`` and ``harmonic[g]`` (fractions) on ``num_images``
    images; ``offset`` is the grid value with the highest harmonic mean (the smallest such value on ties).
    ``seconds``: the fit's wall time (inference included), reported with the result because the fit is a whole
    extra pass over the validation split.
    """

    offset: float
    offsets: np.ndarray
    seen_miou: np.ndarray
    unseen_miou: np.ndarray
    harmonic: np.ndarray
    num_images: int
    seconds: float = float("nan")

    def line(self) -> str:
        """One line for reports: the offset, what it was fitted on and what the fit cost."""
        return (
            f"seen-bias offset {self.offset:.3g} fitted on {self.num_images} validation images "
            f"({len(self.offsets)} offsets, one inference pass) in {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary with the whole curve."""
        return {
            "offset": self.offset,
            "num_images": self.num_images,
            "seconds": json_safe(self.seconds),
            "curve": [
                {
                    "offset": float(o),
                    "seen_miou": json_safe(float(s)),
                    "unseen_miou": json_safe(float(u)),
                    "harmonic": json_safe(float(h)),
                }
                for o, s, u, h in zip(self.offsets, self.seen_miou, self.unseen_miou, self.harmonic)
            ],
        }


def default_offsets(model: nn.Module, points: int = 81) -> np.ndarray:
    """``points`` offsets from 0 to one full logit scale of the model (a cosine gap of 1, well past any useful
    value): ``1/0.07`` for LSeg, the CLIP scale (100) for the dense-CLIP baselines."""
    return np.linspace(0.0, model_logit_scale(model), points)


def fit_seen_offset(
    model: nn.Module,
    data: EvalData,
    protocol: EvalConfig | None = None,
    offsets: Sequence[float] | None = None,
    progress: bool = True,
) -> SeenOffsetFit:
    """Fit the seen-class logit offset on ``data`` (the validation split): the value of ``offsets`` with the
    highest harmonic mean of seen and unseen mIoU, every offset scored from ONE pass of inference.

    Args:
        model: the model to calibrate.
        data: the fitting split with a zero-shot :class:`~lseg_nb.utils.labels.LabelSplit`.
        protocol: the inference and decision settings (as used for the test split).
        offsets: the grid (default :func:`default_offsets`: 0 to one logit scale, 81 points).
        progress: show a progress bar.
    """
    protocol = protocol or EvalConfig()
    labels = data.labels
    if not labels.is_zero_shot:
        raise InputError(
            "seen-bias calibration needs a zero-shot fold (seen and unseen classes); this data has no fold"
        )
    grid = np.asarray(default_offsets(model) if offsets is None else offsets, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise InputError(f"offsets must be a non-empty list of finite numbers, got {offsets}")
    start = time.perf_counter()
    every = tuple(range(labels.num_classes))
    sweep = [Setting(f"offset_{g}", every, labels, float(o)) for g, o in enumerate(grid)]
    scored = score_settings(
        model,
        data.dataset,
        labels,
        sweep,
        protocol,
        max_images=data.max_images,
        per_image=False,
        num_workers=data.num_workers,
        progress=progress,
        desc=f"calibrate-seen: fit on {data.split or 'validation'} ({len(grid)} offsets, one pass)",
    )
    names = labels.class_names
    scores = [compute_metrics(scored.confusion[s.name], names, labels.seen, labels.unseen) for s in sweep]
    s = np.array([m.seen_miou for m in scores], dtype=np.float64)
    u = np.array([m.unseen_miou for m in scores], dtype=np.float64)
    h = np.array([m.harmonic_iou for m in scores], dtype=np.float64)
    if np.isnan(h).all():
        raise InputError(
            "cannot fit the seen offset: the fitting split holds no pixel of a seen or of an unseen class"
        )
    best = int(np.nanargmax(h))  # first maximum = the smallest offset on ties
    return SeenOffsetFit(float(grid[best]), grid, s, u, h, len(scored.ids), time.perf_counter() - start)
