"""Dense inference: single pass, sliding window, multi-scale + flip, for any model with LSeg's interface
(``encode_image``, ``logits_from_embeddings``, ``text_dim``, ``size_multiple``, ``config.crop_size``).

Images must already be normalised with the model's ``config.mean``/``config.std``. The protocol parameters
come from one :class:`~lseg_nb.config.EvalConfig` (:func:`protocol_kwargs`); the window is ``config.crop_size``. The multi-scale mode follows
the official LSeg ``LSeg_MultiEvalModule`` (scales 0.5-1.75, horizontal flip, 480 px windows, stride 2/3,
bilinear resizing with ``align_corners=True``); the differences are listed in :func:`predict_logits`.
:class:`Predictor` caches one image's pixel embeddings so that new label sets cost only the text side.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.config import OFFICIAL_SCALES, EvalConfig
from lseg_nb.models import LSeg
from lseg_nb.utils.device import model_device

Mode = Literal["single", "sliding", "multiscale"]
MODES = ("single", "sliding", "multiscale")
_UP = dict(mode="bilinear", align_corners=True)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own ``training`` flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def protocol_kwargs(protocol: EvalConfig, crop_size: int | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`predict_logits` for an evaluation protocol (window ``crop_size``)."""
    out: dict[str, Any] = {
        "mode": protocol.mode,
        "stride_ratio": protocol.stride_ratio,
        "scales": protocol.scales,
        "flip": protocol.flip,
        "base_size": protocol.base_size,
    }
    if crop_size is not None:
        out["crop_size"] = int(crop_size)
    return out


def _check_images(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W) normalised float tensors, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be float (normalised with the model's mean/std), got {images.dtype}")


def _check_text(model: LSeg, text_embs: Sequence[Tensor]) -> None:
    dim = model.text_dim
    for t in text_embs:
        if t.ndim != 2 or t.shape[1] != dim or t.shape[0] < 1:
            raise ValueError(
                f"text embeddings must be (K >= 1, {dim}), got {tuple(t.shape)}: "
                "use model.encode_text(labels) of the text encoder the model was built with"
            )


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    """Zero-pad (the normalised mean colour) at the bottom/right to at least ``h x w``."""
    ph, pw = max(h - x.shape[-2], 0), max(w - x.shape[-1], 0)
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def embed_padded(model: LSeg, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Pixel embeddings of ``x`` zero-padded to the backbone's size multiple, and the padded size."""
    m = model.size_multiple
    xp = _pad_to(x, math.ceil(x.shape[-2] / m) * m, math.ceil(x.shape[-1] / m) * m)
    return model.encode_image(xp), (int(xp.shape[-2]), int(xp.shape[-1]))


def _single(model: LSeg, x: Tensor, text_embs: Sequence[Tensor]) -> list[Tensor]:
    """One forward pass (padded, logits cropped back): a list of ``(B, K_i, H, W)``, one per text set."""
    h, w = x.shape[-2:]
    emb, size = embed_padded(model, x)
    return [model.logits_from_embeddings(emb, t, size)[..., :h, :w] for t in text_embs]


def _window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, length)``; the last window is shifted to end at the border."""
    n = math.ceil(max(length - crop, 0) / stride) + 1
    return sorted({min(i * stride, length - crop) for i in range(n)})


def _sliding(
    model: LSeg, x: Tensor, text_embs: Sequence[Tensor], crop: int, stride_ratio: float
) -> list[Tensor]:
    """Average the logits of ``crop x crop`` windows (stride ``crop * stride_ratio``) over their overlaps."""
    h, w = x.shape[-2:]
    if h <= crop and w <= crop:
        return _single(model, x, text_embs)
    stride = max(1, int(crop * stride_ratio))
    xp = _pad_to(x, crop, crop)
    ph, pw = xp.shape[-2:]
    outs = [x.new_zeros(x.shape[0], t.shape[0], ph, pw) for t in text_embs]
    count = x.new_zeros(1, 1, ph, pw)
    for h0 in _window_starts(ph, crop, stride):
        for w0 in _window_starts(pw, crop, stride):
            win = xp[..., h0 : h0 + crop, w0 : w0 + crop]
            for out, logit in zip(outs, _single(model, win, text_embs), strict=True):
                out[..., h0 : h0 + crop, w0 : w0 + crop] += logit
            count[..., h0 : h0 + crop, w0 : w0 + crop] += 1
    return [(out / count)[..., :h, :w] for out in outs]


def scaled_size(h: int, w: int, scale: float, base_size: int | None) -> tuple[int, int]:
    """Input size at ``scale``: relative (``round(h * s), round(w * s)``) or, with ``base_size``, the official
    PyTorch-Encoding rule: long side ``ceil(base_size * s)``, short side ``int(short * long / long_in + 0.5)``."""
    if base_size is None:
        return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    long = math.ceil(base_size * scale)  # official: the long side becomes base_size * scale
    if h > w:
        return long, max(1, int(w * long / h + 0.5))
    return max(1, int(h * long / w + 0.5)), long


def _multiscale(
    model: LSeg,
    x: Tensor,
    text_embs: Sequence[Tensor],
    crop: int,
    stride_ratio: float,
    scales: Sequence[float],
    flip: bool,
    base_size: int | None,
) -> list[Tensor]:
    h, w = x.shape[-2:]
    totals = [x.new_zeros(x.shape[0], t.shape[0], h, w) for t in text_embs]
    n = 0
    for scale in scales:
        sh, sw = scaled_size(h, w, scale, base_size)
        xs = x if (sh, sw) == (h, w) else F.interpolate(x, size=(sh, sw), **_UP)
        views = [(xs, False), (xs.flip(-1), True)] if flip else [(xs, False)]
        for view, flipped in views:
            for total, logit in zip(
                totals, _sliding(model, view, text_embs, crop, stride_ratio), strict=True
            ):
                logit = logit.flip(-1) if flipped else logit
                total += logit if (sh, sw) == (h, w) else F.interpolate(logit, size=(h, w), **_UP)
            n += 1
    return [t / n for t in totals]


def predict_logits_multi(
    model: LSeg,
    images: Tensor,
    text_embs: Sequence[Tensor],
    mode: Mode = "single",
    crop_size: int | None = None,
    stride_ratio: float = 2 / 3,
    scales: Sequence[float] = OFFICIAL_SCALES,
    flip: bool = True,
    base_size: int | None = None,
) -> list[Tensor]:
    """:func:`predict_logits` for several label sets at once: image features are computed once per window."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    crop = int(crop_size if crop_size is not None else model.config.crop_size)
    if crop < 1 or not 0 < stride_ratio <= 1:
        raise ValueError(f"need crop_size >= 1 and 0 < stride_ratio <= 1, got {crop}, {stride_ratio}")
    if mode == "multiscale" and (not scales or min(scales) <= 0):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales}")
    _check_images(images)
    _check_text(model, text_embs)
    device = model_device(model)
    with eval_mode(model), torch.inference_mode():
        x = images.to(device=device, dtype=next(model.parameters()).dtype)
        texts = [t.to(device) for t in text_embs]
        if mode == "single":
            return _single(model, x, texts)
        if mode == "sliding":
            return _sliding(model, x, texts, crop, stride_ratio)
        return _multiscale(model, x, texts, crop, stride_ratio, scales, flip, base_size)


def predict_logits(
    model: LSeg,
    images: Tensor,
    text_emb: Tensor,
    mode: Mode = "single",
    crop_size: int | None = None,
    stride_ratio: float = 2 / 3,
    scales: Sequence[float] = OFFICIAL_SCALES,
    flip: bool = True,
    base_size: int | None = None,
) -> Tensor:
    """Normalised images ``(B, 3, H, W)`` + text embeddings ``(K, D)`` -> logits ``(B, K, H, W)`` (model device).

    ``single``: one forward pass; the image is zero-padded (bottom/right) to a multiple of the backbone's
    coarsest stride (32 for CNNs, the patch size for ViTs) and the logits are cropped back.
    ``sliding``: ``crop_size`` windows (default ``model.config.crop_size``) at stride ``crop_size * stride_ratio``;
    overlapping logits are averaged. Images no larger than one window get a single pass.
    ``multiscale``: for each of ``scales`` the image is resized (bilinear, ``align_corners=True``), run with
    ``sliding`` (which is a single pass when it fits a window) and, with ``flip``, also mirrored; the logits are
    resized back to ``H x W`` and averaged. ``flip`` and ``scales`` are used only by this mode.

    Differences from the official ``LSeg_MultiEvalModule``: scales are relative to the image size unless
    ``base_size`` is given (official: long side = ``ceil(520 * scale)``, i.e. pass ``base_size=520``); padding is
    0 in normalised space (the mean colour) instead of black; images smaller than a window are padded only to the
    size multiple, not to ``crop_size``; the last window in each direction is shifted to end at the image border
    instead of being padded; flip and scale logits are averaged rather than summed (same argmax); batches > 1 work.
    The model runs in eval mode under ``torch.inference_mode``; each submodule's mode is restored afterwards.
    """
    return predict_logits_multi(
        model, images, [text_emb], mode, crop_size, stride_ratio, scales, flip, base_size
    )[0]


class Predictor:
    """Interactive label queries on one image: pixel embeddings are computed once by :meth:`set_image`.

    >>> p = Predictor(model); p.set_image(image)           # (3, H, W) normalised
    >>> mask = p.predict_mask(["grass", "cow", "sky"])    # (H, W) indices into the label list
    """

    def __init__(self, model: LSeg) -> None:
        self.model = model
        self._emb: Tensor | None = None
        self._padded: tuple[int, int] = (0, 0)
        self._size: tuple[int, int] | None = None

    def set_image(self, image: Tensor) -> None:
        """Cache the pixel embeddings of a normalised image ``(3, H, W)`` or ``(1, 3, H, W)`` (single pass)."""
        if image.ndim == 3:
            image = image.unsqueeze(0)
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"set_image takes one image (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        _check_images(image)
        with eval_mode(self.model), torch.inference_mode():
            self._emb, self._padded = embed_padded(self.model, image.to(model_device(self.model)))
        self._size = (int(image.shape[-2]), int(image.shape[-1]))

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the cached image, ``None`` before :meth:`set_image`."""
        return self._size

    def predict(self, labels: Sequence[str] | Tensor) -> Tensor:
        """Logits ``(K, H, W)`` (CPU float) for label strings or text embeddings ``(K, D)``."""
        if self._emb is None or self._size is None:
            raise RuntimeError("call Predictor.set_image(image) before predict()")
        text = labels if isinstance(labels, Tensor) else self.model.encode_text(labels)
        _check_text(self.model, [text])
        emb = self._emb
        with eval_mode(self.model), torch.inference_mode():
            logits = self.model.logits_from_embeddings(emb, text.to(emb.device), self._padded)
        h, w = self._size
        return logits[0, :, :h, :w].float().cpu()

    def similarity(self, labels: Sequence[str] | Tensor) -> Tensor:
        """Cosine similarity ``(K, H, W)`` (CPU float) of each label's text embedding with the pixel embeddings.

        Raw similarities before the logit scale and any head block, bilinearly upsampled (``align_corners``)
        from the embedding grid to the image like the logits.
        """
        if self._emb is None or self._size is None:
            raise RuntimeError("call Predictor.set_image(image) before similarity()")
        text = labels if isinstance(labels, Tensor) else self.model.encode_text(labels)
        _check_text(self.model, [text])
        emb = self._emb
        with torch.inference_mode():
            text = F.normalize(text.to(device=emb.device, dtype=emb.dtype), dim=-1)
            sim = torch.einsum("bdhw,kd->bkhw", F.normalize(emb, dim=1), text)
            sim = F.interpolate(sim, size=self._padded, **_UP)
        h, w = self._size
        return sim[0, :, :h, :w].float().cpu()

    def predict_mask(self, labels: Sequence[str] | Tensor) -> Tensor:
        """Argmax label index per pixel ``(H, W)`` (int64, CPU)."""
        return self.predict(labels).argmax(0)
