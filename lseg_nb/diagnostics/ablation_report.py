"""Shared pieces of the text-encoder ablation (:mod:`.ablation` retrains per encoder, :mod:`.text_swap` swaps the
text encoder of a frozen model): report dataclasses, the encoder list, protocol bookkeeping and row metrics.

Scores: the generalised setting (all labels compete: seen / unseen mIoU and their harmonic mean) and the
unseen-labels-only setting (ZS3Net/SPNet-style: only unseen labels compete, only unseen pixels are scored; not
the paper's episodic protocol).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lseg_nb.config import MINILM, ConfigError, TextEncoderConfig, TrainConfig, to_dict
from lseg_nb.data.experiment import Experiment
from lseg_nb.engine.dense import run_dense
from lseg_nb.engine.evaluate import eval_data
from lseg_nb.engine.results import EvalResult
from lseg_nb.models.lseg import LSeg
from lseg_nb.models.text_encoder import TextEncoder, create_text_encoder
from lseg_nb.utils.io import atomic_write_text
from lseg_nb.utils.parsing import json_safe

Variant = Literal["retrained", "original", "swap_zero_retrain", "swap_head_refit"]
PROJ = "head.proj."


@dataclass(frozen=True)
class SkippedEncoder:
    """An encoder of the ablation that cannot run here; it gets a row with ``status='skipped'`` and ``reason``."""

    reason: str
    text: TextEncoderConfig | None = None


@dataclass
class AblationRow:
    """Scores of one text encoder (IoUs are fractions; ``None`` when undefined or skipped).

    ``seen_miou``/``unseen_miou``/``harmonic_iou``/``miou``/``pixel_acc``: generalised setting (all labels).
    ``unseen_only_*``: the unseen-only setting (ZS3Net/SPNet-style). ``steps``: training steps (``retrained``) or head re-fit steps.
    """

    name: str
    variant: Variant
    text: dict[str, Any] | None
    status: Literal["ok", "skipped"] = "ok"
    reason: str | None = None
    text_dim: int | None = None
    run_dir: str | None = None
    steps: int | None = None
    seconds: float | None = None
    reused: bool = False
    seen_miou: float | None = None
    unseen_miou: float | None = None
    harmonic_iou: float | None = None
    miou: float | None = None
    pixel_acc: float | None = None
    unseen_only_miou: float | None = None
    unseen_only_pixel_acc: float | None = None
    per_class_iou: dict[str, float | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short label for tables and plots."""
        suffix = {
            "swap_zero_retrain": " (swap, no retrain)",
            "swap_head_refit": " (swap, proj re-fit)",
            "original": " (trained)",
        }
        return self.name + suffix.get(self.variant, "")


@dataclass
class AblationReport:
    """All rows of one ablation plus the shared protocol (``TrainConfig`` without ``run_dir``/``model.text``)."""

    kind: Literal["retrain", "swap"]
    dataset: str
    fold: int
    eval_split: str
    seen_classes: list[str]
    unseen_classes: list[str]
    protocol: dict[str, Any]
    rows: list[AblationRow]
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> ``None``)."""
        return json_safe(dataclasses.asdict(self))

    def save_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationReport:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "rows": [AblationRow(**r) for r in data["rows"]]})

    def row(self, name: str, variant: str | None = None) -> AblationRow:
        """The row called ``name`` (and of ``variant`` when given)."""
        for r in self.rows:
            if r.name == name and variant in (None, r.variant):
                return r
        raise KeyError(
            f"no row {name!r} (variant {variant}); rows: {[(r.name, r.variant) for r in self.rows]}"
        )


def load_ablation_report(path: str | Path) -> AblationReport:
    """Read a report written by :meth:`AblationReport.save_json`."""
    return AblationReport.from_dict(json.loads(Path(path).read_text()))


def default_ablation_encoders(
    class_names: Sequence[str],
    clip_pretrained: str | None = None,
    clip_name: str = "ViT-B-32",
    random_dim: int = 384,
) -> dict[str, TextEncoderConfig | SkippedEncoder]:
    """MiniLM (offline), random (``random_dim``, MiniLM's 384 by default), one-hot over all ``class_names``
    (unseen included, else unseen labels could not be embedded) and open_clip ``clip_name``.

    open_clip runs only with ``clip_pretrained`` (a tag such as ``openai`` when its weights are cached or
    downloadable, or a local file); without it, or with a missing file, it is a :class:`SkippedEncoder`.
    """
    encoders: dict[str, TextEncoderConfig | SkippedEncoder] = {
        "minilm": MINILM,
        "random": TextEncoderConfig(kind="random", dim=random_dim, seed=0),
        "one_hot": TextEncoderConfig(kind="one_hot", vocabulary=tuple(class_names)),
    }
    clip = TextEncoderConfig(kind="open_clip", name=clip_name, pretrained=clip_pretrained)
    if clip_pretrained is None:
        encoders["clip"] = SkippedEncoder(
            "no open_clip weights given (clip_pretrained=None; no internet here)", clip
        )
    elif ("/" in clip_pretrained or clip_pretrained.endswith((".bin", ".pt", ".safetensors"))) and not Path(
        clip_pretrained
    ).is_file():
        encoders["clip"] = SkippedEncoder(f"open_clip weights file {clip_pretrained} does not exist", clip)
    else:
        encoders["clip"] = clip
    return encoders


def complete_text(text: TextEncoderConfig, class_names: Sequence[str]) -> TextEncoderConfig:
    """One-hot encoders get the full class vocabulary (unseen included); a given one must cover every class."""
    if text.kind != "one_hot":
        return text
    if not text.vocabulary:
        return dataclasses.replace(text, vocabulary=tuple(class_names))
    missing = [c for c in class_names if c not in text.vocabulary]
    if missing:
        raise ConfigError(
            f"one_hot vocabulary lacks dataset classes {missing}: leave vocabulary empty to use all"
        )
    return text


def protocol_of(cfg: TrainConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run_dir")
    d.pop("progress")
    d["model"].pop("text")
    return d


def row_metrics(result: EvalResult) -> dict[str, Any]:
    a, u = result.all_labels, result.unseen_only
    return {
        "seen_miou": a.seen_miou,
        "unseen_miou": a.unseen_miou,
        "harmonic_iou": a.harmonic_iou,
        "miou": a.miou,
        "pixel_acc": a.pixel_acc,
        "unseen_only_miou": u.miou if u else None,
        "unseen_only_pixel_acc": u.pixel_acc if u else None,
        "per_class_iou": dict(zip(a.class_names, a.per_class_iou, strict=True)),
    }


def ablation_metrics(
    model: LSeg, exp: Experiment, cfg: TrainConfig, split: str, max_images: int | None, progress: bool
) -> dict[str, Any]:
    """:func:`row_metrics` of ``model`` on ``split`` with the run's protocol (no calibration, no intervals)."""
    data = dataclasses.replace(cfg.data, max_images=max_images or cfg.data.max_images)
    protocol = dataclasses.replace(cfg.eval, calibrate_seen=False, bootstrap=0)
    return row_metrics(run_dense(model, eval_data(data, split, model, exp=exp), protocol, progress=progress))


def make_report(
    kind: str, exp: Experiment, cfg: TrainConfig, split: str, rows: list[AblationRow], **extra
) -> AblationReport:
    return AblationReport(
        kind=kind,
        dataset=exp.manifest.name,
        fold=exp.manifest.fold_index(cfg.data.fold),  # a fold given by name is stored as its index
        eval_split=split,
        seen_classes=exp.labels.seen_names,
        unseen_classes=exp.labels.unseen_names,
        protocol={**protocol_of(cfg), **extra},
        rows=rows,
    )


def check_ablation_args(base: TrainConfig, encoders: Mapping[str, Any]) -> None:
    if base.data.fold is None:
        raise ConfigError("the text-encoder ablation needs a zero-shot fold: set TrainConfig.data.fold")
    if not encoders:
        raise ValueError("encoders is empty: pass e.g. default_ablation_encoders(class_names)")
    bad = [n for n in encoders if not n or "/" in n or n.startswith(".") or n != n.strip()]
    if bad:
        raise ValueError(f"encoder names {bad} cannot be run folder names: use plain names such as 'minilm'")


def skipped_row(name: str, variant: Variant, text: TextEncoderConfig | None, reason: str) -> AblationRow:
    return AblationRow(name, variant, to_dict(text) if text else None, status="skipped", reason=reason)


def build_text(text: TextEncoderConfig) -> TextEncoder | str:
    """The encoder, or the reason it cannot be built here (missing weights, no internet)."""
    try:
        return create_text_encoder(text)
    except (RuntimeError, OSError) as e:  # weights unavailable; config mistakes still raise
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
