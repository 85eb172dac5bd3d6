"""Segment a single image file with free-form labels (the ``lseg-nb predict`` command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lseg_nb.inference import predict_logits
from lseg_nb.models.lseg import LSeg
from lseg_nb.runs import load_model_or_spec


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
    """Per-pixel index into ``labels`` for an RGB uint8 image."""
    labels = [lab.strip() for lab in labels if lab.strip()]
    if not labels:
        raise ValueError("give at least one label, e.g. --labels grass sky cow")
    device = next(model.parameters()).device
    text = model.encode_text(labels).to(device)
    logits = predict_logits(model, to_input(image, model).to(device), text, mode=mode)
    return logits[0].argmax(0).cpu().numpy()


def predict_image(
    weights: str | Path, image_path: str | Path, labels: Sequence[str], out: str | Path, mode: str = "single"
) -> dict[str, float]:
    """Segment ``image_path`` with ``labels``, save an overlay figure to ``out``, return each label's pixel share.

    ``weights``: run folder, ``.safetensors`` file or dense-CLIP spec (``maskclip:ViT-B-16/openai``).
    """
    from lseg_nb.viz.segmentation import plot_examples

    model = load_model_or_spec(weights)
    image = load_image(image_path)
    pred = segment(model, image, labels, mode)
    fig = plot_examples([(image, pred, pred)], list(labels))
    fig.axes[2].set_title("prediction (colour key)")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    counts = np.bincount(pred.ravel(), minlength=len(labels))
    return {lab: float(c) / pred.size for lab, c in zip(labels, counts)}
