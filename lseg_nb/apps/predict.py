"""Segment a single image file with free-form labels (the ``lseg-nb predict`` command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from lseg_nb.data.images import read_rgb
from lseg_nb.data.transforms import normalize_image
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.runs import load_model_or_spec
from lseg_nb.models.lseg import LSeg
from lseg_nb.utils.device import model_device, resolve_device
from lseg_nb.utils.errors import printable
from lseg_nb.utils.io import atomic_save_figure, check_output_path
from lseg_nb.utils.labels import clean_labels
from lseg_nb.viz.explorer import plot_label_query


def to_input(image: np.ndarray, model: LSeg) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised ``(1, 3, H, W)`` with the model's mean/std."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    return normalize_image(x, model.config.mean, model.config.std).unsqueeze(0)


def segment(
    model: LSeg, image: np.ndarray, labels: Sequence[str], mode: str = "single", **options: Any
) -> np.ndarray:
    """Per-pixel index into ``labels`` for an RGB uint8 image; ``options`` (``amp``, ``window_batch``,
    ``compile``, ...) go to :func:`~lseg_nb.engine.inference.predict_logits`."""
    labels = clean_labels(labels, "labels")
    device = model_device(model)
    text = model.encode_text(labels).to(device)
    logits = predict_logits(model, to_input(image, model).to(device), text, mode=mode, **options)
    return logits[0].argmax(0).cpu().numpy()


def predict_figure(
    model: LSeg,
    image: np.ndarray,
    labels: Sequence[str],
    mode: str = "single",
    title: str = "image",
    **options: Any,
) -> tuple[Figure, dict[str, float]]:
    """Segment an RGB uint8 image: image | overlay figure and each label's pixel share.

    The figure's key lists the labels found in the image with their shares; labels covering no pixel are
    named once as "not found". ``options`` as in :func:`segment`.
    """
    names = clean_labels(labels, "labels")
    pred = segment(model, image, names, mode, **options)
    counts = np.bincount(pred.ravel(), minlength=len(names))
    fig = plot_label_query(image, pred, names, title=title, omit_absent=True)
    return fig, {lab: float(c) / pred.size for lab, c in zip(names, counts)}


def predict_image(
    weights: str | Path,
    image_path: str | Path,
    labels: Sequence[str],
    out: str | Path,
    mode: str = "single",
    **options: Any,
) -> dict[str, float]:
    """Segment ``image_path`` with ``labels``, save :func:`predict_figure` to ``out``, return the pixel shares.

    ``weights``: run folder, ``.safetensors`` file or dense-CLIP spec (``maskclip:ViT-B-16/openai``). Labels,
    the output path and the image are checked before the model is loaded: bad input fails fast, and a bad
    ``out`` never costs the work.
    The model runs on the GPU when there is one; ``options`` (``amp``, ``window_batch``, ``compile``) as in
    :func:`segment`.
    """
    names = clean_labels(labels, "--labels")  # one cleaned list for the model, the figure and the shares
    out = check_output_path(out, "--out")
    image = read_rgb(image_path)
    model = load_model_or_spec(weights, map_location=str(resolve_device("auto")))
    fig, shares = predict_figure(model, image, names, mode, printable(Path(image_path).name), **options)
    atomic_save_figure(fig, out)
    return shares
