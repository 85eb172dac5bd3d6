"""Segment a single image file with free-form labels (the ``lseg-nb predict`` command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lseg_nb.data.images import read_rgb
from lseg_nb.data.transforms import normalize_image
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.runs import load_model_or_spec
from lseg_nb.models.lseg import LSeg
from lseg_nb.utils.device import model_device, resolve_device
from lseg_nb.utils.io import atomic_save_figure, check_output_path
from lseg_nb.utils.labels import clean_labels
from lseg_nb.viz.segmentation import plot_examples


def to_input(image: np.ndarray, model: LSeg) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised ``(1, 3, H, W)`` with the model's mean/std."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    return normalize_image(x, model.config.mean, model.config.std).unsqueeze(0)


def segment(
    model: LSeg, image: np.ndarray, labels: Sequence[str], mode: str = "single", **options: Any
) -> np.ndarray:
    """Per-pixel index into ``labels`` for an RGB uint8 image; ``options`` (``amp``, ``window_batch``,
    ``compile``, ...) go to :func:`~lseg_nb.engine.inference.predict_logits`."""
    labels = clean_labels(labels, "--labels")
    device = model_device(model)
    text = model.encode_text(labels).to(device)
    logits = predict_logits(model, to_input(image, model).to(device), text, mode=mode, **options)
    return logits[0].argmax(0).cpu().numpy()


def predict_image(
    weights: str | Path,
    image_path: str | Path,
    labels: Sequence[str],
    out: str | Path,
    mode: str = "single",
    **options: Any,
) -> dict[str, float]:
    """Segment ``image_path`` with ``labels``, save an overlay figure to ``out``, return each label's pixel share.

    ``weights``: run folder, ``.safetensors`` file or dense-CLIP spec (``maskclip:ViT-B-16/openai``). The model
    runs on the GPU when there is one; ``options`` as in :func:`segment`.
    """
    labels = clean_labels(labels, "--labels")  # one cleaned list for the model, the figure and the shares
    out = check_output_path(out, "--out")  # before the work: a bad path must not lose the result
    image = read_rgb(image_path)
    model = load_model_or_spec(weights, map_location=str(resolve_device("auto")))
    pred = segment(model, image, labels, mode, **options)
    fig = plot_examples([(image, pred, pred)], list(labels))
    fig.axes[2].set_title("prediction (colour key)")
    atomic_save_figure(fig, out)
    counts = np.bincount(pred.ravel(), minlength=len(labels))
    return {lab: float(c) / pred.size for lab, c in zip(labels, counts)}
