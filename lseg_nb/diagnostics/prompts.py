"""What moves the numbers besides the model: the prompt templates and the class names.

Open-vocabulary scores move with the prompt templates and the names given to the classes (FLOSS, arXiv
2504.10487; RENOVATE, NeurIPS 2024). Two analyses, both on one :class:`~lseg_nb.engine.dense.EvalData` with one
protocol, so only the texts differ between rows:

* :func:`template_analysis`: each template alone against all of them averaged (the text encoder averages the
  unit prompt embeddings of a label and re-normalises, as CLIP's prompt ensembling does): mIoU and per-class
  IoU per row.
* :func:`renaming_analysis`: one class at a time renamed to each of its alternative names, everything else
  fixed: the class's IoU and the mIoU per name, and the spread (max - min) per class.

FLOSS's per-class template selection is not implemented here. Every evaluation runs the model once over the data
(image embeddings are not shared between rows), so keep ``max_images`` small on a CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

__all__ = ["PromptRow", "renaming_analysis", "template_analysis"]


@dataclass(frozen=True)
class PromptRow:
    """One variant's scores (fractions): what changed (``variant``), mIoU over all labels, per-class IoU by the
    class's first original name."""

    variant: str
    miou: float
    per_class_iou: dict[str, float]


def _score(
    model: nn.Module, data: EvalData, protocol: EvalConfig, variant: str, names: Sequence[str]
) -> PromptRow:
    m = run_dense(model, data, protocol, 0, False).all_labels
    return PromptRow(variant, m.miou, dict(zip(names, m.per_class_iou, strict=True)))


def _quiet(protocol: EvalConfig | None) -> EvalConfig:
    return dataclasses.replace(protocol or EvalConfig(), bootstrap=0, calibrate_seen=False)


def template_analysis(
    model: nn.Module, data: EvalData, templates: Sequence[str], protocol: EvalConfig | None = None
) -> list[PromptRow]:
    """Scores with each template alone, then with all averaged (last row ``"average of all"``).

    Args:
        model: a model whose text encoder takes templates (LSeg; dense-CLIP models' ``text_encoder``).
        data: images and labels to score.
        templates: prompt templates with a ``{}`` for the label, e.g. ``"a photo of a {}."``.
        protocol: inference and decision settings (bootstrap and calibration are switched off here).
    """
    encoder = getattr(model, "text_encoder", None)
    if encoder is None or not hasattr(encoder, "templates"):
        raise InputError("template_analysis needs a model whose text_encoder has prompt templates")
    if not templates:
        raise InputError("give at least one template")
    protocol, names = _quiet(protocol), data.labels.class_names
    own = encoder.templates
    rows = []
    try:
        for t in [*[(t,) for t in templates], tuple(templates)]:
            encoder.templates = t  # the encoder's cache is keyed by the templates: no stale embeddings
            rows.append(_score(model, data, protocol, t[0] if len(t) == 1 else "average of all", names))
    finally:
        encoder.templates = own
    return rows


def renaming_analysis(
    model: nn.Module,
    data: EvalData,
    alternatives: Mapping[str, Sequence[str]],
    protocol: EvalConfig | None = None,
) -> tuple[list[PromptRow], dict[str, float]]:
    """Rows for the original names and for each ``(class, alternative name)``, and per class the spread of its
    IoU over its names (original included).

    Args:
        model: any lseg_nb model.
        data: images and labels to score.
        alternatives: class (its first name) -> other names to try, one at a time.
        protocol: inference and decision settings (bootstrap and calibration are switched off here).
    """
    labels, protocol = data.labels, _quiet(protocol)
    names = labels.class_names
    unknown = sorted(set(alternatives) - set(names))
    if unknown:
        raise InputError(f"classes {unknown} are not in the label set {list(names)}")
    rows = [_score(model, data, protocol, "original names", names)]
    spread = {}
    for cls, others in alternatives.items():
        c = names.index(cls)
        ious = [rows[0].per_class_iou[cls]]
        for other in others:
            renamed = [list(n) for n in labels.names]
            renamed[c] = [other]
            split = LabelSplit(renamed, labels.seen, labels.unseen, labels.void, labels.background)
            row = _score(model, dataclasses.replace(data, labels=split), protocol, f"{cls} -> {other}", names)
            rows.append(row)
            ious.append(row.per_class_iou[cls])
        valid = [v for v in ious if v == v]  # NaN: the class is absent and never predicted
        spread[cls] = max(valid) - min(valid) if valid else float("nan")
    return rows, spread
