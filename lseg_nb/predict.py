"""Segment a single image file with free-form labels (the ``lseg-nb predict`` command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from lseg_nb.inference import predict_logits
from lseg_nb.models.lseg import LSeg
from lseg_nb.notebook_utils import parse_labels
from lseg_nb.runs import load_model
from lseg_nb.viz.explorer import plot_label_query


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 array of an image file, with a clear error for missing or unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        return np.array(Image.open(path).convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not a readable image: {e}") from None


def to_input(image: np.ndarray, model: LSeg) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised ``(1, 3, H, W)`` with the model's mean/std."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(model.config.mean).view(3, 1, 1)
    std = torch.tensor(model.config.std).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def segment(model: LSeg, image: np.ndarray, labels: Sequence[str], mode: str = "single") -> np.ndarray:
    """Per-pixel index into ``labels`` for an RGB uint8 image (labels: distinct, non-empty strings)."""
    labels = parse_labels(labels, strict=True)
    device = next(model.parameters()).device
    text = model.encode_text(labels).to(device)
    logits = predict_logits(model, to_input(image, model).to(device), text, mode=mode)
    return logits[0].argmax(0).cpu().numpy()


def predict_figure(
    model: LSeg, image: np.ndarray, labels: Sequence[str], mode: str = "single", title: str = "image"
) -> tuple[Figure, dict[str, float]]:
    """Segment an RGB uint8 image: image | overlay figure and each label's pixel share.

    The figure's key lists the labels found in the image with their shares; labels covering no pixel are
    named once as "not found".
    """
    names = parse_labels(labels, strict=True)
    pred = segment(model, image, names, mode)
    counts = np.bincount(pred.ravel(), minlength=len(names))
    fig = plot_label_query(image, pred, names, title=title, omit_absent=True)
    return fig, {lab: float(c) / pred.size for lab, c in zip(names, counts)}


def predict_image(
    weights: str | Path, image_path: str | Path, labels: Sequence[str], out: str | Path, mode: str = "single"
) -> dict[str, float]:
    """Segment ``image_path`` with ``labels``, save :func:`predict_figure` to ``out``, return the pixel shares."""
    names = parse_labels(labels, strict=True)  # before loading the model: bad labels fail fast
    model = load_model(weights)
    fig, shares = predict_figure(model, load_image(image_path), names, mode, Path(image_path).name)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return shares
