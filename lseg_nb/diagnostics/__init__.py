"""Embedding diagnostics: tensors in, arrays/tensors or dataclasses out (plots live in :mod:`lseg_nb.viz`).

* :func:`sample_pixels` - stratified, capped, streaming pixel sample (bounded memory).
* :func:`neighbour_analysis` - do pixels land near their own label text? + similarity/confusion Spearman test.
* :func:`joint_umap` - 2-D UMAP of sampled pixels and label texts.
* :class:`CalibrationAccumulator`, :func:`fit_temperature`, :func:`temperature_scaling`, :func:`confidence_map`.
* :func:`nearest_text_map` - per-pixel nearest text of an arbitrary (e.g. distractor) vocabulary.
* :func:`run_text_encoder_ablation`, :func:`swap_text_encoder`, :func:`run_swap_ablation` - text-encoder
  ablation (:class:`AblationReport`); imported on first use, since they pull in the training pipeline.

Per-pixel outputs (samples, maps) are CPU torch tensors; reports are dataclasses holding numpy arrays.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lseg_nb.diagnostics.calibration import (
    CalibrationAccumulator,
    CalibrationReport,
    TemperatureScaling,
    calibration_reports,
    confidence_map,
    fit_temperature,
    temperature_scaling,
)
from lseg_nb.diagnostics.nearest_text import nearest_text_map, vocabulary_shares
from lseg_nb.diagnostics.neighbours import (
    ClassNeighbours,
    NeighbourReport,
    nearest_texts,
    neighbour_analysis,
    similarity_confusion_spearman,
)
from lseg_nb.diagnostics.sampling import PixelSampler, flatten_pixels, sample_pixels
from lseg_nb.diagnostics.umap_projection import UmapResult, joint_umap

if TYPE_CHECKING:
    from lseg_nb.diagnostics.ablation import run_text_encoder_ablation
    from lseg_nb.diagnostics.ablation_report import (
        AblationReport,
        AblationRow,
        SkippedEncoder,
        default_ablation_encoders,
        load_ablation_report,
    )
    from lseg_nb.diagnostics.text_swap import run_swap_ablation, swap_text_encoder

# Ablation names load on first use: their modules import the training pipeline (seconds), the rest does not.
_LAZY = {
    "AblationReport": "ablation_report",
    "AblationRow": "ablation_report",
    "SkippedEncoder": "ablation_report",
    "default_ablation_encoders": "ablation_report",
    "load_ablation_report": "ablation_report",
    "run_text_encoder_ablation": "ablation",
    "run_swap_ablation": "text_swap",
    "swap_text_encoder": "text_swap",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "AblationReport",
    "AblationRow",
    "CalibrationAccumulator",
    "CalibrationReport",
    "ClassNeighbours",
    "NeighbourReport",
    "PixelSampler",
    "SkippedEncoder",
    "TemperatureScaling",
    "UmapResult",
    "calibration_reports",
    "confidence_map",
    "default_ablation_encoders",
    "fit_temperature",
    "flatten_pixels",
    "joint_umap",
    "load_ablation_report",
    "nearest_text_map",
    "nearest_texts",
    "neighbour_analysis",
    "run_swap_ablation",
    "run_text_encoder_ablation",
    "sample_pixels",
    "similarity_confusion_spearman",
    "swap_text_encoder",
    "temperature_scaling",
    "vocabulary_shares",
]
