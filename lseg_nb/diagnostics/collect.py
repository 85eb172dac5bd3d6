"""Dataset-level collectors feeding the diagnostics: pixel embeddings, per-pixel logits and example images.

Every item of ``dataset`` is ``(normalised image (3, H, W) float, label (H, W) long, 255 = void)`` with labels
indexing the full class list. Images are loaded and checked by the shared loader
(:func:`~lseg_nb.data.loading.eval_batches`, worker processes when the model is on a GPU) and processed one at a
time on the model's device (datasets such as MSRC-v2 mix image sizes), zero-padded at the bottom/right to the backbone's size multiple exactly as :mod:`lseg_nb.engine.inference` does; the
padding is labelled ``ignore_index`` so it never enters a statistic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lseg_nb.config import EvalConfig
from lseg_nb.data.loading import eval_batches
from lseg_nb.data.transforms import denormalize
from lseg_nb.diagnostics.nearest_text import nearest_text_map
from lseg_nb.diagnostics.sampling import sample_pixels
from lseg_nb.engine import inference
from lseg_nb.engine.inference import eval_mode, predict_logits
from lseg_nb.models import LSeg
from lseg_nb.utils.device import model_device


def _items(
    model: LSeg,
    dataset: Dataset,
    max_images: int | None = None,
    indices: Sequence[int] | None = None,
    num_classes: int | None = None,
    ignore_index: int = 255,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """``(index, image (3, H, W), label (H, W))`` one image at a time through the shared loader (checked items,
    worker processes when the model is on a GPU)."""
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
    if indices is None:
        indices = range(len(dataset) if max_images is None else min(len(dataset), max_images))
    batches = eval_batches(
        dataset, model_device(model), indices=indices, num_classes=num_classes, ignore_index=ignore_index
    )
    for index, image, label in batches:
        yield int(index[0]), image[0], label[0]


def embed_padded(model: LSeg, image: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Unit pixel embeddings ``(1, D, Hp/2, Wp/2)`` (CPU float32) of one image padded to ``(Hp, Wp)``."""
    with eval_mode(model), torch.inference_mode():
        emb, size = inference.embed_padded(model, image[None].float().to(model_device(model)))
    return emb.float().cpu(), size


def iter_pixel_embeddings(
    model: LSeg,
    dataset: Dataset,
    max_images: int | None = None,
    ignore_index: int = 255,
    progress: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Per image: ``(pixel_emb (1, D, Hp/2, Wp/2), labels (1, Hp, Wp))``, padding labelled ``ignore_index``.

    Feed it to :func:`~lseg_nb.diagnostics.sample_pixels` or :func:`~lseg_nb.diagnostics.joint_umap`, which
    nearest-resize the labels onto the embedding grid.
    """
    items = _items(model, dataset, max_images, ignore_index=ignore_index)
    total = len(dataset) if max_images is None else min(len(dataset), max_images)
    for _, image, label in tqdm(items, total=total, desc="embed", unit="img", disable=not progress):
        emb, (hp, wp) = embed_padded(model, image)
        h, w = label.shape
        yield emb, F.pad(label, (0, wp - w, 0, hp - h), value=ignore_index)[None]


def collect_pixel_embeddings(
    model: LSeg,
    dataset: Dataset,
    max_images: int | None = None,
    per_class: int = 2000,
    max_total: int = 20000,
    seed: int = 0,
    ignore_index: int = 255,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Stratified sample of labelled pixel embeddings over a dataset: ``(emb (N, D) float32, labels (N,))``.

    At most ``per_class`` pixels per class and ``max_total`` in all (see :func:`sample_pixels`); memory stays
    bounded by the sample plus one image whatever the dataset size. Labels index the dataset's full class list.
    """
    batches = iter_pixel_embeddings(model, dataset, max_images, ignore_index, progress)
    return sample_pixels(
        batches, per_class=per_class, max_total=max_total, seed=seed, ignore_index=ignore_index
    )


def collect_logits(
    model: LSeg,
    dataset: Dataset,
    labels: Sequence[str],
    max_images: int | None = None,
    pixels_per_image: int | None = 2000,
    seed: int = 0,
    protocol: EvalConfig | None = None,
    ignore_index: int = 255,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-pixel logits over ``labels`` (the text of class index ``c`` is ``labels[c]``) and their targets.

    Returns ``(logits (N, K) float32, target (N,) long)`` for up to ``pixels_per_image`` labelled pixels drawn
    uniformly per image (seeded; ``None`` keeps all), e.g. for :func:`~lseg_nb.diagnostics.temperature_scaling`.
    """
    if pixels_per_image is not None and pixels_per_image < 1:
        raise ValueError(f"pixels_per_image must be >= 1 or None, got {pixels_per_image}")
    text = model.encode_text(list(labels))
    rng = np.random.default_rng(seed)
    out_logits, out_target = [], []
    items = _items(model, dataset, max_images, num_classes=len(labels), ignore_index=ignore_index)
    total = len(dataset) if max_images is None else min(len(dataset), max_images)
    for _, image, label in tqdm(items, total=total, desc="logits", unit="img", disable=not progress):
        logits = predict_logits(model, image[None], text, protocol)[0].cpu()
        valid = torch.nonzero(label.reshape(-1) != ignore_index)[:, 0]
        if pixels_per_image is not None and len(valid) > pixels_per_image:
            valid = valid[torch.from_numpy(np.sort(rng.choice(len(valid), pixels_per_image, replace=False)))]
        out_logits.append(logits.reshape(len(labels), -1)[:, valid].T)
        out_target.append(label.reshape(-1)[valid])
    return torch.cat(out_logits), torch.cat(out_target)


@dataclass(frozen=True, eq=False)
class ImageExample:
    """One image analysed for figures. ``image`` uint8 ``(H, W, 3)``; ``target``/``pred`` int64 ``(H, W)``.

    ``logits`` ``(K, H, W)`` over the class names; ``nearest``/``nearest_sim`` ``(H, W)``: index into the
    vocabulary of each pixel's nearest text and its cosine similarity (``None`` without a vocabulary).
    """

    index: int
    image: np.ndarray
    target: np.ndarray
    logits: Tensor
    pred: np.ndarray
    nearest: np.ndarray | None = None
    nearest_sim: np.ndarray | None = None


def collect_examples(
    model: LSeg,
    dataset: Dataset,
    class_names: Sequence[str],
    indices: Sequence[int],
    vocabulary: Sequence[str] | None = None,
) -> list[ImageExample]:
    """Logits, prediction and (with ``vocabulary``) nearest-text map of the images ``indices``.

    The image is embedded once; logits come from the model head (single pass), nearest texts from cosine
    similarity upsampled to the padded size (:func:`~lseg_nb.diagnostics.nearest_text_map`) then cropped.
    """
    bad = [i for i in indices if not 0 <= int(i) < len(dataset)]
    if bad:
        raise IndexError(f"image indices {bad} are out of range for a dataset of {len(dataset)} images")
    text = model.encode_text(list(class_names)).float().cpu()
    vocab_emb = model.encode_text(list(vocabulary)).float().cpu() if vocabulary is not None else None
    out = []
    for i, image, label in _items(model, dataset, indices=[int(i) for i in indices]):
        emb, padded = embed_padded(model, image)
        h, w = label.shape
        with eval_mode(model), torch.inference_mode():
            dev = model_device(model)
            logits = (
                model.logits_from_embeddings(emb.to(dev), text.to(dev), padded)[0, :, :h, :w].float().cpu()
            )
        near = sim = None
        if vocab_emb is not None:
            corners = bool(getattr(model, "align_corners", True))
            idx, s = nearest_text_map(emb[0], vocab_emb, list(vocabulary), padded, align_corners=corners)
            near, sim = idx[:h, :w].numpy(), s[:h, :w].numpy()
        img = denormalize(image, model.config.mean, model.config.std)
        out.append(ImageExample(int(i), img, label.numpy(), logits, logits.argmax(0).numpy(), near, sim))
    return out
