"""Text-encoder ablation (issue 4): is zero-shot transfer carried by the pixel-text alignment or by the text encoder?

Two experiments, both scored in the generalised zero-shot setting (all labels compete: seen / unseen mIoU and
their harmonic mean) and in the paper's setting (unseen labels only, unseen pixels only):

* :func:`run_text_encoder_ablation` trains the *same* image encoder / decoder / head recipe once per text encoder
  under one protocol: same seed, data, fold, steps and optimiser; only ``model.text`` differs. Because the text
  encoder is built before the seeded model, the image encoder and decoder also start from identical weights.
* :func:`swap_text_encoder` (the referee's variant) freezes a trained image encoder + decoder and swaps only the
  text encoder. The head's 1x1 projection ``head.proj`` maps decoder features into the text space, so for a new
  space it alone is re-fitted on the seen classes (everything else frozen, BatchNorm statistics included); when
  the dimension matches, the swap without any retraining is reported too. The image features are then *exactly*
  the same for every text encoder, so if unseen mIoU collapses with random or one-hot text, the zero-shot
  transfer is carried by the geometry of the text embeddings (which unseen labels lie near which seen ones), not
  by the image features alone. One-hot texts are the control: every unseen text is orthogonal to every seen one,
  so nothing learned on seen classes can say which unseen label a pixel belongs to.

Results are :class:`AblationReport` dataclasses (JSON round-trip); plots live in :mod:`lseg_nb.viz.ablation`.
The swap experiment lives in :mod:`lseg_nb.diagnostics.text_swap` (:func:`swap_text_encoder`,
:func:`run_swap_ablation`, :func:`refit_head_projection`, :class:`SwapResult`) and is re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lseg_nb.config import ConfigError, TextEncoderConfig, TrainConfig, load_config, to_dict
from lseg_nb.evaluate import EvalResult
from lseg_nb.experiment import Experiment, make_experiment
from lseg_nb.io import atomic_write_text
from lseg_nb.models.lseg import LSeg
from lseg_nb.models.text_encoder import TextEncoder, create_text_encoder

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these come from __getattr__ below
    from lseg_nb.diagnostics.text_swap import (  # noqa: F401
        SwapResult,
        refit_head_projection,
        run_swap_ablation,
        swap_text_encoder,
    )

Variant = Literal["retrained", "original", "swap_zero_retrain", "swap_head_refit"]
PROJ = "head.proj."
MINILM = TextEncoderConfig(kind="sentence_transformers", name="all-MiniLM-L6-v2")


@dataclass(frozen=True)
class SkippedEncoder:
    """An encoder of the ablation that cannot run here; it gets a row with ``status='skipped'`` and ``reason``."""

    reason: str
    text: TextEncoderConfig | None = None


@dataclass
class AblationRow:
    """Scores of one text encoder (IoUs are fractions; ``None`` when undefined or skipped).

    ``seen_miou``/``unseen_miou``/``harmonic_iou``/``miou``/``pixel_acc``: generalised setting (all labels).
    ``unseen_only_*``: the paper's setting. ``steps``: training steps (``retrained``) or head re-fit steps.
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
        return _json_safe(dataclasses.asdict(self))

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


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


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


def _complete_text(text: TextEncoderConfig, class_names: Sequence[str]) -> TextEncoderConfig:
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


def _protocol(cfg: TrainConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run_dir")
    d.pop("progress")
    d["model"].pop("text")
    return d


def _metrics(result: EvalResult) -> dict[str, Any]:
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


def _evaluate(
    model: LSeg, exp: Experiment, cfg: TrainConfig, split: str, max_images: int | None, progress: bool
):
    from lseg_nb.pipeline import evaluate_split

    return _metrics(evaluate_split(model, exp, split, cfg, max_images=max_images, progress=progress))


def _report(
    kind: str, exp: Experiment, cfg: TrainConfig, split: str, rows: list[AblationRow], **extra
) -> AblationReport:
    return AblationReport(
        kind=kind,
        dataset=exp.manifest.name,
        fold=int(cfg.data.fold),
        eval_split=split,
        seen_classes=exp.labels.seen_names,
        unseen_classes=exp.labels.unseen_names,
        protocol={**_protocol(cfg), **extra},
        rows=rows,
    )


def _check_ablation_args(base: TrainConfig, encoders: Mapping[str, Any]) -> None:
    if base.data.fold is None:
        raise ConfigError("the text-encoder ablation needs a zero-shot fold: set TrainConfig.data.fold")
    if not encoders:
        raise ValueError("encoders is empty: pass e.g. default_ablation_encoders(class_names)")
    bad = [n for n in encoders if not n or "/" in n or n.startswith(".") or n != n.strip()]
    if bad:
        raise ValueError(f"encoder names {bad} cannot be run folder names: use plain names such as 'minilm'")


def run_text_encoder_ablation(
    base: TrainConfig,
    encoders: Mapping[str, TextEncoderConfig | SkippedEncoder],
    out_dir: str | Path,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    progress: bool = True,
) -> AblationReport:
    """Train ``base`` once per text encoder into ``out_dir/<name>`` and evaluate seen/unseen on ``eval_split``.

    Only ``model.text`` (and ``run_dir``) differ between runs; a one-hot encoder gets every class name (unseen
    included) as vocabulary. Finished runs with the same config are reused; a folder holding a different run
    raises :class:`ConfigError`. Encoders that cannot be built (e.g. open_clip weights unavailable offline)
    become ``skipped`` rows with the reason. The report is written to ``out_dir/ablation.json`` after every row.
    """
    _check_ablation_args(base, encoders)
    exp, out_dir, rows = make_experiment(base.data), Path(out_dir), []
    report = _report("retrain", exp, base, eval_split, rows)
    for name, spec in encoders.items():
        if isinstance(spec, SkippedEncoder):
            rows.append(_skipped(name, "retrained", spec.text, spec.reason))
        else:
            text = _complete_text(spec, exp.labels.class_names)
            cfg = dataclasses.replace(
                base,
                model=dataclasses.replace(base.model, text=text),
                run_dir=str(out_dir / name),
                progress=progress,
            )
            rows.append(_train_and_evaluate(name, cfg, exp, eval_split, max_eval_images, progress))
        report.save_json(out_dir / "ablation.json")
    return report


def _skipped(name: str, variant: Variant, text: TextEncoderConfig | None, reason: str) -> AblationRow:
    return AblationRow(name, variant, to_dict(text) if text else None, status="skipped", reason=reason)


def _build_text(text: TextEncoderConfig) -> TextEncoder | str:
    """The encoder, or the reason it cannot be built here (missing weights, no internet)."""
    try:
        return create_text_encoder(text)
    except (RuntimeError, OSError) as e:  # weights unavailable; config mistakes still raise
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _train_and_evaluate(
    name: str, cfg: TrainConfig, exp: Experiment, split: str, max_images: int | None, progress: bool
) -> AblationRow:
    from lseg_nb.runs import load_model
    from lseg_nb.train import resolve_device, train

    encoder = _build_text(cfg.model.text)
    if isinstance(encoder, str):
        return _skipped(name, "retrained", cfg.model.text, encoder)
    run_dir = Path(cfg.run_dir)
    reused = (run_dir / "model.safetensors").is_file()
    if reused:
        saved = load_config(TrainConfig, run_dir / "config.json")
        if _protocol(saved) != _protocol(cfg) or saved.model.text != cfg.model.text:
            raise ConfigError(
                f"{run_dir} holds a finished run with another config: delete it or use a new out_dir"
            )
    t0 = time.perf_counter()
    if not reused:
        train(cfg, text_encoder=encoder)
    seconds = None if reused else round(time.perf_counter() - t0, 1)
    model = load_model(run_dir, text_encoder=encoder, map_location=str(resolve_device(cfg.device)))
    return AblationRow(
        name,
        "retrained",
        to_dict(cfg.model.text),
        text_dim=encoder.dim,
        run_dir=str(run_dir),
        steps=cfg.steps,
        seconds=seconds,
        reused=reused,
        **_evaluate(model, exp, cfg, split, max_images, progress),
    )


_SWAP_EXPORTS = ("SwapResult", "refit_head_projection", "run_swap_ablation", "swap_text_encoder")


def __getattr__(name: str) -> Any:
    # text_swap builds on this module, so its names are re-exported on first use (an eager import would cycle).
    if name in _SWAP_EXPORTS:
        from lseg_nb.diagnostics import text_swap

        return getattr(text_swap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SWAP_EXPORTS])
