"""Segment a single image file with free-form labels (the one-image form of ``lseg-nb predict``): the
:class:`~lseg_nb.engine.predictor.Predictor` with the protocol's inference and decision rule, then a figure.

:func:`predict_image` also returns what the inference did to this image (mode, window, the sizes it ran at:
:func:`~lseg_nb.engine.predictor.describe_inference`), which ``lseg-nb predict`` prints: the same labels give
different masks in ``single`` and ``sliding`` mode, and a figure should never leave its reader guessing which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from lseg_nb.config import EvalConfig
from lseg_nb.data.images import read_rgb
from lseg_nb.engine.predictor import Predictor, as_label_split, describe_inference
from lseg_nb.engine.runs import load_model
from lseg_nb.utils.device import resolve_device
from lseg_nb.utils.errors import printable
from lseg_nb.utils.io import atomic_save_figure, check_output_path
from lseg_nb.utils.labels import LabelSplit
from lseg_nb.viz.explorer import plot_label_query

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def segment(
    model: nn.Module,
    image: np.ndarray,
    labels: str | Sequence[str] | LabelSplit,
    protocol: EvalConfig | None = None,
) -> np.ndarray:
    """Class index per pixel of an RGB uint8 image (``labels``: typed labels, ``"sofa|couch"`` = one class)."""
    predictor = Predictor(model, protocol)
    predictor.set_image(image)
    return predictor.predict_mask(as_label_split(labels)).numpy()


def predict_figure(
    model: nn.Module,
    image: np.ndarray,
    labels: str | Sequence[str] | LabelSplit,
    protocol: EvalConfig | None = None,
    title: str = "image",
) -> tuple[Figure, dict[str, float]]:
    """Segment an RGB uint8 image: image | overlay figure and each class's pixel share (by its first name).

    The figure's key lists the classes found in the image with their shares; classes covering no pixel are
    named once as "not found".
    """
    split = as_label_split(labels)
    pred = segment(model, image, split, protocol)
    names = list(split.class_names)
    counts = np.bincount(pred.ravel(), minlength=len(names))
    fig = plot_label_query(image, pred, names, title=title, omit_absent=True)
    return fig, {lab: float(c) / pred.size for lab, c in zip(names, counts, strict=True)}


@dataclass(frozen=True)
class ImagePrediction:
    """What :func:`predict_image` did: each class's pixel share and the inference it ran (mode and sizes)."""

    shares: dict[str, float]
    inference: str


def predict_image(
    weights: str | Path,
    image_path: str | Path,
    labels: Sequence[str],
    out: str | Path,
    protocol: EvalConfig | None = None,
) -> ImagePrediction:
    """Segment ``image_path`` with ``labels``, save :func:`predict_figure` to ``out``, return the pixel shares
    and the inference used (:func:`~lseg_nb.engine.predictor.describe_inference`).

    Args:
        weights: run folder, ``.safetensors`` file or dense-CLIP spec.
        image_path: the image file.
        labels: typed labels, ``"sofa|couch"`` = one class.
        out: the figure file.
        protocol: the inference and decision settings (default ``EvalConfig()``).

    ``weights``: run folder, ``.safetensors`` file or dense-CLIP spec (``naclip:ViT-B-16/openai``). Labels, the
    output path and the image are checked before the model is loaded: bad input fails fast, and a bad ``out``
    never costs the work. The model runs on the GPU when there is one.
    """
    split = LabelSplit.from_labels(list(labels))
    out = check_output_path(out, "--out")
    image = read_rgb(image_path)
    model = load_model(weights, map_location=str(resolve_device("auto")))
    protocol = protocol or EvalConfig()
    fig, shares = predict_figure(model, image, split, protocol, printable(Path(image_path).name))
    atomic_save_figure(fig, out)
    return ImagePrediction(shares, describe_inference(model, protocol, *image.shape[:2]))
