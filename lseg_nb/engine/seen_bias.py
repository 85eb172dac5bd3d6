"""Seen-class bias calibration for the generalised (all-labels) zero-shot setting.

A model trained on seen classes scores them higher than any unseen label, so when every label competes the
unseen classes are rarely predicted (unseen mIoU near 0). Calibrated stacking (Chao et al., ECCV 2016) subtracts
one constant ``offset`` from every seen label's logit before the argmax. The offset is fitted on the validation
split (the one maximising the harmonic mean of seen and unseen mIoU there) and then applied unchanged to the test
split, so no test label is used. ``offset = 0`` is the uncalibrated model.

Logits here are the model's: ``logit_scale * cosine`` (1/0.07 = 14.3 by default), so offsets are in those units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lseg_nb.config import DataConfig, EvalConfig
from lseg_nb.data.experiment import Experiment
from lseg_nb.data.loading import eval_batches
from lseg_nb.engine.evaluate import IGNORE, resolve_split
from lseg_nb.engine.inference import Mode, predict_logits_multi, protocol_kwargs
from lseg_nb.engine.metrics import compute_metrics, confusion_matrix
from lseg_nb.models import LSeg
from lseg_nb.utils.device import model_device
from lseg_nb.utils.parsing import json_safe


@dataclass(frozen=True, eq=False)
class SeenOffsetFit:
    """The fitted seen-class logit offset and the curve it was chosen from (on the fitting split).

    ``offsets[g]`` scored ``seen_miou[g]``, ``unseen_miou[g]`` and ``harmonic[g]`` (fractions) on ``num_images``
    images; ``offset`` is the grid value with the highest harmonic mean (the smallest such value on ties).
    """

    offset: float
    offsets: np.ndarray
    seen_miou: np.ndarray
    unseen_miou: np.ndarray
    harmonic: np.ndarray
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary with the whole curve."""
        return {
            "offset": self.offset,
            "num_images": self.num_images,
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


def default_offsets(model: LSeg, points: int = 81) -> np.ndarray:
    """``points`` offsets from 0 to one full logit scale (a cosine gap of 1, well past any useful value)."""
    scale = float(model.head.scale) if hasattr(model, "head") else 1 / 0.07
    return np.linspace(0.0, scale, points)


def seen_offset_confusions(
    model: LSeg,
    dataset: Dataset,
    labels: Sequence[str],
    seen: Sequence[int],
    offsets: Sequence[float],
    *,
    mode: Mode = "single",
    max_images: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    **inference_kwargs: Any,
) -> Tensor:
    """``(G, K, K)`` all-labels confusion matrices (rows = target; void dropped), one per offset subtracted from
    the logits of the ``seen`` class indices, from ONE pass of inference over ``dataset`` items ``(image, label)``.
    """
    k = len(labels)
    device = model_device(model)
    text = model.encode_text(list(labels))
    shift = torch.zeros(len(offsets), k, device=device)
    shift[:, list(seen)] = torch.as_tensor(np.asarray(offsets, dtype=np.float32), device=device)[:, None]
    cms = torch.zeros(len(offsets), k, k, dtype=torch.long, device=device)
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    batches = eval_batches(dataset, device, indices=range(n), num_classes=k, num_workers=num_workers)
    with tqdm(total=n, desc="seen offset", unit="img", disable=not progress) as bar:
        for _, images, target in batches:
            logits = predict_logits_multi(model, images.to(device), [text], mode, **inference_kwargs)[0]
            target = target.to(device)
            for g in range(len(offsets)):
                pred = (logits - shift[g][None, :, None, None]).argmax(1)
                cms[g] += confusion_matrix(pred, target, k, IGNORE, check=False)
            bar.update(images.shape[0])
    return cms.cpu()


def fit_seen_offset(
    model: LSeg,
    dataset: Dataset,
    labels: Sequence[str],
    unseen: Sequence[int],
    offsets: Sequence[float] | None = None,
    *,
    seen: Sequence[int] | None = None,
    **kwargs: Any,
) -> SeenOffsetFit:
    """Fit the seen-class logit offset on ``dataset`` (the validation split): the value of ``offsets`` (default
    :func:`default_offsets`) with the highest harmonic mean of seen and unseen mIoU. ``kwargs`` go to
    :func:`seen_offset_confusions` (inference protocol, ``max_images``, ``progress``)."""
    seen_t, unseen_t = resolve_split(len(labels), seen, unseen)
    grid = np.asarray(default_offsets(model) if offsets is None else offsets, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"offsets must be a non-empty list of finite numbers, got {offsets}")
    cms = seen_offset_confusions(model, dataset, labels, seen_t, grid, **kwargs)
    names = [str(x) for x in labels]
    scores = [compute_metrics(cm, names, seen_t, unseen_t) for cm in cms]
    s = np.array([m.seen_miou for m in scores], dtype=np.float64)
    u = np.array([m.unseen_miou for m in scores], dtype=np.float64)
    h = np.array([m.harmonic_iou for m in scores], dtype=np.float64)
    if np.isnan(h).all():
        raise ValueError(
            "cannot fit the seen offset: the fitting split holds no pixel of a seen or of an unseen class"
        )
    best = int(np.nanargmax(h))  # first maximum = the smallest offset on ties
    n = len(dataset) if kwargs.get("max_images") is None else min(len(dataset), kwargs["max_images"])
    return SeenOffsetFit(float(grid[best]), grid, s, u, h, n)


def fit_split_seen_offset(
    model: LSeg,
    exp: Experiment,
    data: DataConfig,
    protocol: EvalConfig,
    max_images: int | None = None,
    progress: bool = True,
) -> SeenOffsetFit:
    """:func:`fit_seen_offset` on an experiment's validation split (``data.val_split``) with its fold's labels
    and the evaluation ``protocol`` (a run's ``cfg.eval``)."""
    labels = exp.labels
    if not labels.unseen:
        raise ValueError(
            "seen-bias calibration needs a zero-shot fold (seen and unseen classes); this data has no fold"
        )
    dataset = exp.dataset(data.val_split, model.config, data)
    return fit_seen_offset(
        model,
        dataset,
        list(labels.class_names),
        list(labels.unseen),
        seen=list(labels.seen),
        max_images=max_images,
        progress=progress,
        num_workers=data.num_workers,
        **protocol_kwargs(protocol, model.config.crop_size),
    )
