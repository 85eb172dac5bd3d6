"""Typed evaluation results: :class:`EvalResult` (dense protocols: one :class:`SettingResult` per setting) and
:class:`EpisodicResult` (the paper's episodic protocol). Both carry the protocol that produced them and serialise
to JSON with :meth:`to_dict` (NaN -> ``None``), so no caller branches on the shape of a dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lseg_nb.config import EvalConfig, to_dict
from lseg_nb.engine.metrics import Baseline, ImageCounts, SegMetrics
from lseg_nb.utils.io import atomic_write_text
from lseg_nb.utils.labels import LabelSplit
from lseg_nb.utils.parsing import json_safe

#: What each dense setting measures (written into every JSON record).
SETTING_DESCRIPTIONS = {
    "all_labels": "every label competes and every labelled pixel is scored; with a zero-shot fold this is the "
    "generalised zero-shot setting (seen / unseen / harmonic mIoU)",
    "calibrated": "the generalised setting again after seen-class bias calibration: seen_offset (fitted on the "
    "validation split to maximise the harmonic mean there) is subtracted from every seen label's logit",
    "unseen_only": "ZS3Net/SPNet-style zero-shot setting: only the fold's unseen labels compete and only their "
    "pixels are scored (not the LSeg paper's episodic protocol)",
}
BASELINE_DESCRIPTION = (
    "chance scores of label-free guesses on the setting's pixels: every pixel = the most frequent class "
    "(majority) or a uniform random label (expected value)"
)


@dataclass(frozen=True, eq=False)
class EvalExample:
    """One image for figures: ``image`` uint8 ``(H, W, 3)`` (de-normalised), ``pred``/``target`` int64 ``(H, W)``.

    ``pred`` indexes the evaluated label list; ``target`` keeps the void value for unlabelled pixels.
    """

    index: int
    image: np.ndarray
    pred: np.ndarray
    target: np.ndarray


@dataclass(frozen=True, eq=False)
class SettingResult:
    """One setting's scores. ``labels``: its own label set (the competing classes, their seen/unseen positions).
    ``confusion``: ``(K, K)`` counts (rows = target). ``per_image``: per-image counts for the bootstrap.
    ``intervals``: ``{metric: (low, high)}`` fractions, or ``None`` without a bootstrap. ``offset``: the seen
    offset subtracted (calibrated setting)."""

    name: str
    labels: LabelSplit
    metrics: SegMetrics
    confusion: np.ndarray
    baseline: Baseline
    per_image: ImageCounts | None = field(default=None, repr=False)
    intervals: dict[str, Any] | None = None
    offset: float | None = None

    @property
    def description(self) -> str:
        return SETTING_DESCRIPTIONS.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "classes": list(self.labels.class_names),
            "seen": list(self.labels.seen) if self.labels.is_zero_shot else None,
            "unseen": list(self.labels.unseen) if self.labels.is_zero_shot else None,
            "metrics": self.metrics.to_dict(),
            "baseline": self.baseline.to_dict(),
            "intervals": json_safe(self.intervals),
            "seen_offset": self.offset,
            "confusion": self.confusion.tolist(),
        }


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Metrics of one dense evaluation: the label set, the protocol, and one :class:`SettingResult` per setting
    (``all_labels`` always; ``calibrated`` and ``unseen_only`` with a zero-shot fold). ``dataset``/``split``/
    ``fold``: what was scored; ``window``: the model's crop size (sliding and multi-scale windows)."""

    labels: LabelSplit
    protocol: EvalConfig
    settings: dict[str, SettingResult]
    num_images: int
    image_ids: tuple[str, ...] = ()
    dataset: str | None = None
    split: str | None = None
    fold: int | str | None = None
    window: int | None = None
    examples: tuple[EvalExample, ...] = field(default=(), repr=False)
    notes: tuple[str, ...] = ()

    # the settings' metrics by name (None where a setting was not scored)
    @property
    def all_labels(self) -> SegMetrics:
        return self.settings["all_labels"].metrics

    @property
    def unseen_only(self) -> SegMetrics | None:
        s = self.settings.get("unseen_only")
        return s.metrics if s is not None else None

    @property
    def calibrated(self) -> SegMetrics | None:
        s = self.settings.get("calibrated")
        return s.metrics if s is not None else None

    @property
    def seen_offset(self) -> float | None:
        s = self.settings.get("calibrated")
        return s.offset if s is not None else None

    @property
    def seen(self) -> tuple[int, ...] | None:
        return self.labels.seen if self.labels.is_zero_shot else None

    @property
    def unseen(self) -> tuple[int, ...] | None:
        return self.labels.unseen if self.labels.is_zero_shot else None

    @property
    def confusion(self) -> np.ndarray:
        return self.settings["all_labels"].confusion

    @property
    def protocol_name(self) -> str:
        """Every number-changing setting of the protocol in words, with the window size."""
        return self.protocol.describe(self.window if self.protocol.mode != "single" else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (examples left out): data, protocol (name and every field), label set, settings."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "fold": self.fold,
            "num_images": self.num_images,
            "protocol": self.protocol_name,
            "protocol_config": to_dict(self.protocol),
            "window": self.window,
            "labels": self.labels.to_dict(),
            "unseen_classes": self.labels.unseen_names,
            "notes": list(self.notes),
            "baseline_description": BASELINE_DESCRIPTION,
            "settings": {name: s.to_dict() for name, s in self.settings.items()},
            "image_ids": list(self.image_ids),
        }

    def save_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")


@dataclass(frozen=True, eq=False)
class EpisodeCounts:
    """Per-episode areas of the episodic protocol (episodes are the resampling unit): ``class_ids`` ``(E,)``
    (1-based), ``intersection``/``union`` int64 ``(E, 2)`` (background, foreground)."""

    class_ids: np.ndarray
    intersection: np.ndarray
    union: np.ndarray


@dataclass(frozen=True, eq=False)
class EpisodicResult:
    """The paper's episodic zero-shot score of one benchmark fold (percent), HSNet bookkeeping.

    ``per_class_iou``/``episodes_per_class`` by class name; ``intersection``/``union``: the accumulated
    ``(2, C)`` areas; ``episodes``: per served episode (for the bootstrap); ``generalised``: the generalised
    dense settings (``fold``, ``all``; not reported in the paper) when asked for; ``info``: provenance of the
    episode lists (files, hashes, whether the label texts are the paper's).
    """

    benchmark: str
    fold: int
    protocol: EvalConfig
    miou: float
    fb_iou: float
    per_class_iou: dict[str, float]
    episodes_per_class: dict[str, int]
    num_episodes: int
    distinct_episodes: int
    intersection: np.ndarray
    union: np.ndarray
    episodes: EpisodeCounts | None = field(default=None, repr=False)
    intervals: dict[str, Any] | None = None
    generalised: dict[str, EvalResult] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return self.protocol.episode_size

    @property
    def protocol_name(self) -> str:
        return self.protocol.describe()

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "benchmark": self.benchmark,
                "fold": self.fold,
                "protocol": self.protocol_name,
                "protocol_config": to_dict(self.protocol),
                "miou": self.miou,
                "fb_iou": self.fb_iou,
                "intervals": self.intervals,
                "per_class_iou": self.per_class_iou,
                "episodes_per_class": self.episodes_per_class,
                "num_episodes": self.num_episodes,
                "distinct_episodes": self.distinct_episodes,
                "image_size": self.image_size,
                "intersection": self.intersection.tolist(),
                "union": self.union.tolist(),
                "generalised": {k: v.to_dict() for k, v in self.generalised.items()},
                **self.info,
            }
        )

    def save_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
