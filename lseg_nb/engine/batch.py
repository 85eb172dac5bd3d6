"""Predictions for many images: which files (:func:`collect_images`) and one result per image
(:func:`predict_images`), the library behind ``lseg-nb predict --out-dir``.

Inputs are files, folders (searched recursively for image files), glob patterns and ``@list.txt`` files (one
path per line, relative to the list's folder). Each image gets a key, its path relative to the deepest folder
holding all inputs, so two ``0001.png`` from different folders keep apart and outputs mirror the input tree.

Images are decoded by DataLoader workers (``num_workers``), the labels are embedded once, and consecutive images
of one size go through the same inference, refinement and decision rule as
:class:`~lseg_nb.engine.predictor.Predictor` (``batch_size`` at a time), so a batch prediction is the same as
predicting each image alone. An unreadable image is a result with ``error`` set (the caller records and skips
it); memory stays bounded by ``batch_size`` images at a time.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lseg_nb.config import EvalConfig
from lseg_nb.data.images import read_rgb
from lseg_nb.engine.features import FeatureRecipe, extract_features
from lseg_nb.engine.inference import predict_logits_multi, refine_logits
from lseg_nb.engine.postprocess import encode_labels, protocol_predict, protocol_scores
from lseg_nb.engine.predictor import to_input
from lseg_nb.utils.errors import InputError, UserError
from lseg_nb.utils.io import user_path
from lseg_nb.utils.labels import LabelSplit

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
__all__ = ["ImagePrediction", "collect_images", "predict_images"]


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _expand(item: str, seen_lists: set[Path]) -> list[Path]:
    if item.startswith("@"):
        listing = user_path(item[1:]).resolve()
        if not listing.is_file():
            raise FileNotFoundError(f"image list {listing} does not exist (@FILE: one image path per line)")
        if listing in seen_lists:
            raise InputError(f"image list {listing} includes itself")
        seen_lists.add(listing)
        out: list[Path] = []
        for line in listing.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(os.path.expanduser(line))
                out += _expand(str(p if p.is_absolute() else listing.parent / p), seen_lists)
        return out
    path = user_path(item)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if _is_image(p))
    if path.is_file():
        return [path]
    if glob.has_magic(item):
        return sorted(
            Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True) if _is_image(Path(p))
        )
    raise FileNotFoundError(f"{item}: no such image file, folder or glob match")


def collect_images(inputs: Sequence[str]) -> list[tuple[Path, str]]:
    """``(path, key)`` of every image named by ``inputs`` (module docstring), in order, each once; ``key`` is the
    path relative to the deepest folder holding them all (``/`` separated)."""
    if not inputs:
        raise InputError("no images given: pass image files, folders, glob patterns or @list.txt")
    seen: dict[Path, None] = {}
    lists: set[Path] = set()
    for item in inputs:
        found = _expand(str(item), lists)
        if not found:
            raise InputError(f"{item}: holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        for p in found:
            seen.setdefault(p.resolve(), None)
    paths = list(seen)
    parents = [str(p.parent) for p in paths]
    common = Path(os.path.commonpath(parents))
    return [(p, p.relative_to(common).as_posix()) for p in paths]


@dataclass
class ImagePrediction:
    """One image's result: ``mask`` ``(H, W)`` int64 class indices; when asked for, ``probs`` ``(K, H, W)``
    float32 (softmax over the classes of the class logits; under a protocol with a logit scale or thresholds, its
    own reference probabilities: softmax over all names, max per class) and ``features`` ``(D, h, w)`` unit pixel
    embeddings; ``image`` the RGB input; ``error``: why the image was skipped (then the arrays are ``None``)."""

    path: Path
    key: str
    size: tuple[int, int] | None = None
    mask: np.ndarray | None = None
    probs: np.ndarray | None = None
    features: np.ndarray | None = None
    image: np.ndarray | None = None
    seconds: float = 0.0
    error: str | None = None


class _Images(Dataset):
    """Decoded RGB images (or the reason one cannot be read), for DataLoader workers."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, read_rgb(self.paths[i]), None
        except (UserError, OSError, ValueError) as e:
            return i, None, str(e).splitlines()[0]


def _item(item: Any) -> Any:
    return item  # DataLoader collate for single items (a module-level function: workers can pickle it)


def predict_images(
    model: nn.Module,
    images: Sequence[tuple[Path, str]],
    labels: LabelSplit,
    protocol: EvalConfig | None = None,
    probs: bool = False,
    features: bool = False,
    feature_recipe: str | FeatureRecipe = "native",
    feature_size: tuple[int, int] | None = None,
    num_workers: int = 0,
    batch_size: int = 1,
) -> Iterator[ImagePrediction]:
    """One :class:`ImagePrediction` per ``(path, key)`` of ``images``, in order.

    Args:
        model: any lseg_nb model (``lseg_nb.load_model``).
        images: from :func:`collect_images`.
        labels: the classes (several names each allowed).
        protocol: inference and decision settings (default ``EvalConfig()``).
        probs: also return per-class probabilities.
        features: also return unit pixel embeddings (:func:`~lseg_nb.engine.features.extract_features`).
        feature_recipe: ``native`` (lseg_nb's single pass), ``openscene`` or ``vlmaps`` (the downstream recipes).
        feature_size: ``(h, w)`` to resize the features to (default: the recipe's resolution).
        num_workers: DataLoader workers decoding images.
        batch_size: consecutive images of the same size run through the network together (a GPU's speed-up;
            the predictions are those of one image at a time up to float rounding).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    protocol = protocol or EvalConfig()
    text, owner = encode_labels(model, labels)  # once for every image
    # probabilities: the protocol's own when it computes them (reference rule), else the softmax over classes
    native = protocol.scores_probabilities
    scale = getattr(model, "logit_scale", None)
    loader = DataLoader(
        _Images([p for p, _ in images]), batch_size=None, num_workers=num_workers, collate_fn=_item
    )
    group: list[tuple[int, np.ndarray]] = []

    def flush() -> Iterator[ImagePrediction]:
        # the Predictor's path (inference, refinement, decision) for a stack of same-size images
        start = time.perf_counter()
        x = torch.cat([to_input(rgb, model) for _, rgb in group])
        logits = refine_logits(x, predict_logits_multi(model, x, [text], protocol), protocol)[0]
        scores = protocol_scores(logits, owner, protocol, scale)
        masks = protocol_predict(scores, protocol, labels.background).cpu().numpy()
        share = (time.perf_counter() - start) / len(group)
        for k, (i, rgb) in enumerate(group):
            t0 = time.perf_counter()
            path, key = images[i]
            out = ImagePrediction(
                path, key, size=(int(rgb.shape[0]), int(rgb.shape[1])), mask=masks[k], image=rgb
            )
            if probs:
                out.probs = (scores[k] if native else scores[k].softmax(0)).float().cpu().numpy()
            if features:
                out.features = extract_features(model, rgb, feature_recipe, feature_size).cpu().numpy()
            out.seconds = share + time.perf_counter() - t0
            yield out
        group.clear()

    for i, rgb, error in loader:
        if group and (
            len(group) == batch_size or group[-1][1].shape != (rgb.shape if rgb is not None else None)
        ):
            yield from flush()
        if error is not None:
            path, key = images[i]
            yield ImagePrediction(path, key, error=error)
            continue
        group.append((i, rgb))
    if group:
        yield from flush()
