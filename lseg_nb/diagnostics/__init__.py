"""Embedding diagnostics: tensors in, arrays/tensors or dataclasses out (plots live in :mod:`lseg_nb.viz`).

* :func:`sample_pixels` - stratified, capped, streaming pixel sample (bounded memory).
* :func:`neighbour_analysis` - do pixels land near their own label text? + similarity/confusion Spearman test.
* :func:`joint_umap` - 2-D UMAP of sampled pixels and label texts.
* :class:`CalibrationAccumulator`, :func:`fit_temperature`, :func:`temperature_scaling`, :func:`confidence_map`.
* :func:`nearest_text_map` - per-pixel nearest text of an arbitrary (e.g. distractor) vocabulary.

Per-pixel outputs (samples, maps) are CPU torch tensors; reports are dataclasses holding numpy arrays.
"""

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

__all__ = [
    "CalibrationAccumulator",
    "CalibrationReport",
    "ClassNeighbours",
    "NeighbourReport",
    "PixelSampler",
    "TemperatureScaling",
    "UmapResult",
    "calibration_reports",
    "confidence_map",
    "fit_temperature",
    "flatten_pixels",
    "joint_umap",
    "nearest_text_map",
    "nearest_texts",
    "neighbour_analysis",
    "sample_pixels",
    "similarity_confusion_spearman",
    "temperature_scaling",
    "vocabulary_shares",
]
