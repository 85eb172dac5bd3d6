"""Dense evaluation of a labelled data set: the settings of a label set, scored in one pass.

With a zero-shot fold (unseen classes in the :class:`~lseg_nb.utils.labels.LabelSplit`) three settings come from
the same image features:

* ``all_labels`` (generalised zero-shot): every label competes; seen mIoU, unseen mIoU and their harmonic mean;
* ``calibrated`` (``EvalConfig.calibrate_seen``): the same after seen-bias calibration (an offset subtracted from
  the seen labels' logits, fitted on the validation split by :func:`~lseg_nb.engine.seen_bias.fit_seen_offset`);
* ``unseen_only`` (ZS3Net/SPNet-style -- NOT the LSeg paper's protocol, which is the episodic one in
  :mod:`lseg_nb.engine.episodic`): only the unseen labels compete and only pixels of unseen classes are scored.

Every setting reports its chance baselines (majority class, uniform guess) on its own pixels and labels, and Open
mIoU beside mIoU with the class similarities of ``EvalConfig.open_similarity`` (:mod:`lseg_nb.engine.open_miou`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from lseg_nb.config import EvalConfig
from lseg_nb.engine.bootstrap import image_intervals
from lseg_nb.engine.examples import example_positions
from lseg_nb.engine.metrics import chance_baseline, compute_metrics
from lseg_nb.engine.open_miou import class_similarity
from lseg_nb.engine.results import EvalExample, EvalResult, SettingResult
from lseg_nb.engine.scoring import Setting, score_settings
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit


@dataclass(frozen=True, eq=False)
class EvalData:
    """A data set to score: ``dataset`` items ``(image (3, H, W) normalised with the model's mean/std, label
    (H, W) int64 with ``labels.void`` for unlabelled pixels)`` and its :class:`LabelSplit` (class names, the
    zero-shot partition, the background class). ``name``/``split``/``fold`` name it in reports; images of one size
    may go through the model ``batch_size`` at a time."""

    dataset: Dataset
    labels: LabelSplit
    name: str | None = None
    split: str | None = None
    fold: int | str | None = None
    max_images: int | None = None
    num_workers: int | None = None
    batch_size: int = 1


def dense_settings(labels: LabelSplit, seen_offset: float | None = None) -> list[Setting]:
    """The settings of a label set: ``all_labels``; with unseen classes also ``calibrated`` (when an offset is
    given) and ``unseen_only``."""
    every = tuple(range(labels.num_classes))
    out = [Setting("all_labels", every, labels)]
    if labels.is_zero_shot:
        if seen_offset is not None:
            out.append(Setting("calibrated", every, labels, float(seen_offset)))
        out.append(Setting("unseen_only", labels.unseen, labels.subset(labels.unseen)))
    elif seen_offset is not None:
        raise InputError("seen-bias calibration needs a zero-shot fold (seen and unseen classes)")
    return out


def run_dense(
    model: nn.Module,
    data: EvalData,
    protocol: EvalConfig,
    examples: int | Sequence[int] = 0,
    progress: bool = True,
    seen_offset: float | None = None,
    settings: Sequence[Setting] | None = None,
) -> EvalResult:
    """Score ``model`` on ``data`` with ``protocol`` (see the module docstring); ``examples``: image indices, or
    how many diverse images to keep with predictions for figures; ``seen_offset``: the calibration offset;
    ``settings``: other settings than :func:`dense_settings` (the first one's predictions go into examples)."""
    labels = data.labels
    n = len(data.dataset) if data.max_images is None else min(len(data.dataset), data.max_images)
    keep = example_positions(data.dataset, n, labels.num_classes, examples, labels.unseen)
    settings = list(settings) if settings is not None else dense_settings(labels, seen_offset)
    similarity = class_similarity(
        protocol.open_similarity, model, labels
    )  # before the pass: a bad file fails fast
    scored = score_settings(
        model,
        data.dataset,
        labels,
        settings,
        protocol,
        max_images=n,
        keep=keep,
        num_workers=data.num_workers,
        batch_size=data.batch_size,
        progress=progress,
        desc=f"evaluate ({protocol.mode})",
    )
    results = {}
    for s in settings:
        cm = scored.confusion[s.name]
        sl = s.labels
        seen = sl.seen if sl.is_zero_shot else None
        unseen = sl.unseen if sl.is_zero_shot else None
        sim = None if similarity is None else similarity[np.ix_(s.classes, s.classes)]
        results[s.name] = SettingResult(
            name=s.name,
            labels=sl,
            metrics=compute_metrics(cm, sl.class_names, seen, unseen, sl.background, sim),
            confusion=cm,
            baseline=chance_baseline(cm, sl.class_names),
            per_image=scored.per_image[s.name],
            intervals=_intervals(scored.per_image[s.name], sl, seen, unseen, protocol),
            offset=s.offset if s.name == "calibrated" else None,
        )
    return EvalResult(
        labels=labels,
        protocol=protocol,
        settings=results,
        num_images=n,
        image_ids=scored.ids,
        dataset=data.name,
        split=data.split,
        fold=data.fold,
        window=int(model.config.crop_size),
        examples=tuple(EvalExample(*e) for e in scored.examples),
    )


def _intervals(counts, labels: LabelSplit, seen, unseen, protocol: EvalConfig) -> dict | None:
    """Image-level bootstrap intervals of a setting (``protocol.bootstrap`` resamples; 0 or no images: none)."""
    if not protocol.bootstrap or counts is None or counts.num_images == 0:
        return None
    return image_intervals(
        counts, labels.class_names, seen, unseen, protocol.bootstrap, protocol.bootstrap_seed
    )
