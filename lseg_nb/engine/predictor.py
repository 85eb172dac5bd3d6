"""Label queries on one image: :class:`Predictor` caches the image's pixel embeddings, so a new label list costs
only the text encoder and the head (segment-anything's ``SamPredictor`` pattern).

With the default protocol (one pass over the whole image) the cached embeddings answer every query. Other
protocols (sliding windows, multi-scale, a short-side resize) run the whole inference for each query on the
cached input, with the same result as :func:`~lseg_nb.engine.inference.predict_logits`. Predictions follow the
one decision rule of :mod:`lseg_nb.engine.postprocess` (several names per class, thresholds), as evaluation does.

:func:`describe_inference` says what a protocol does to one image (the sizes it runs at and the windows of each
view), so ``lseg-nb predict`` can print the mode and the resolution it used: a sliding or multi-scale result
is only readable next to the window size and the number of windows it was stitched from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from lseg_nb.config import EvalConfig
from lseg_nb.data.images import read_rgb
from lseg_nb.data.transforms import normalize_image
from lseg_nb.engine.inference import (
    _check_images,
    _check_text,
    _padded_size,
    _Runner,
    _window_starts,
    eval_mode,
    predict_logits_multi,
    refine_logits,
    scaled_size,
    upsample_like_model,
)
from lseg_nb.engine.postprocess import (
    encode_labels,
    max_over_names,
    protocol_predict,
    protocol_scores,
    short_side_size,
)
from lseg_nb.utils.device import autocast, model_device
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

ImageInput = str | Path | np.ndarray | Image.Image | Tensor
Labels = str | Sequence[str] | LabelSplit | Tensor


def as_label_split(labels: str | Sequence[str] | LabelSplit) -> LabelSplit:
    """Typed labels (``"sky, sofa|couch"`` or a list of entries) or a :class:`LabelSplit` -> a LabelSplit."""
    return labels if isinstance(labels, LabelSplit) else LabelSplit.from_labels(labels)


def to_input(image: np.ndarray, model: nn.Module) -> Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised ``(1, 3, H, W)`` with the model's mean/std."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {tuple(image.shape)}")
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)  # a copy: inputs may be read-only
    return normalize_image(x, model.config.mean, model.config.std).unsqueeze(0)


def _view_windows(model: nn.Module, protocol: EvalConfig, h: int, w: int) -> str:
    """How one ``h x w`` view runs: one pass (at its padded or cropped size) or a grid of windows."""
    crop = int(model.config.crop_size)
    if protocol.mode == "single" or (h <= crop and w <= crop):  # the window loop's own rule (_windowed)
        if protocol.input_fit == "crop":
            m = model.size_multiple
            fitted, verb = (h - h % m, w - w % m), "cropped"
        else:
            fitted, verb = _padded_size(model, h, w), "padded"
        return "one pass" + (f" ({verb} to {fitted[0]}x{fitted[1]})" if fitted != (h, w) else "")
    ph, pw = (max(h, crop), max(w, crop)) if protocol.input_fit == "pad" else (h, w)
    ch, cw = min(crop, ph), min(crop, pw)
    stride = max(1, int(crop * protocol.stride_ratio))
    rows, cols = len(_window_starts(ph, ch, stride)), len(_window_starts(pw, cw, stride))
    return f"{rows}x{cols} windows of {ch}x{cw}"


def describe_inference(model: nn.Module, protocol: EvalConfig, height: int, width: int) -> str:
    """The protocol's name (with the model's window) and what it does to a ``height x width`` image, e.g.
    ``sliding(stride 0.67, window 96): 120x200 image, 2x3 windows of 96x96``.

    Args:
        model: the model that will run (its ``config.crop_size`` is the window, ``size_multiple`` the padding).
        protocol: the inference settings.
        height: image height in pixels.
        width: image width in pixels.
    """
    h, w = height, width
    where = f"{h}x{w} image"
    if protocol.short_side is not None:
        h, w = short_side_size(h, w, protocol.short_side, protocol.long_cap)
        where += f" resized to {h}x{w}"
    if protocol.mode == "multiscale":
        views = []
        for s in protocol.scales:
            vh, vw = scaled_size(h, w, s, protocol.base_size)
            views.append(f"{s:g} -> {vh}x{vw} ({_view_windows(model, protocol, vh, vw)})")
        where += "; scales " + ", ".join(views) + ("; each view also mirrored" if protocol.flip else "")
    else:
        where += ", " + _view_windows(model, protocol, h, w)
    return f"{protocol.describe(int(model.config.crop_size))}: {where}"


class Predictor:
    """Label queries on one image with any label list.

    >>> p = Predictor(model)
    >>> p.set_image("photo.jpg")                          # a file, PIL image, uint8 array or normalised tensor
    >>> mask = p.predict_mask("sky, grass, cow|calf")     # (H, W) class indices; '|' joins names of one class

    Args:
        model: LSeg, a converted official checkpoint or a dense-CLIP baseline (see ``lseg_nb.load_model``).
        protocol: the inference and decision settings (default ``EvalConfig()``: one pass, argmax).
    """

    def __init__(self, model: nn.Module, protocol: EvalConfig | None = None) -> None:
        self.model = model
        self.protocol = protocol or EvalConfig()
        p = self.protocol
        self._run = _Runner(model, model_device(model), p.amp, p.compile, p.input_fit)
        autocast(self.protocol.amp, self._run.device)  # fail on a bad choice now, not at the first image
        self._cache_features = p.mode == "single" and p.short_side is None and p.input_fit == "pad"
        self._x: Tensor | None = None
        self._emb: Tensor | None = None
        self._padded: tuple[int, int] = (0, 0)
        self.image: np.ndarray | None = None

    def set_image(self, image: ImageInput) -> None:
        """Take one image: a file path (read upright, EXIF applied), a PIL image, an RGB uint8 array ``(H, W, 3)``,
        or a normalised float tensor ``(3, H, W)`` / ``(1, 3, H, W)``. Computes and caches its pixel embeddings
        (default protocol) or keeps the input for the protocol's inference."""
        if isinstance(image, (str, Path)):
            image = read_rgb(image)
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        if isinstance(image, np.ndarray):
            self.image = image
            x = to_input(image, self.model)
        else:
            self.image = None
            x = image.unsqueeze(0) if image.ndim == 3 else image
            if x.ndim != 4 or x.shape[0] != 1:
                raise InputError(
                    f"set_image takes one image (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}"
                )
        _check_images(x)
        self._x = x.to(self._run.device)
        self._emb = None
        if self._cache_features:
            with eval_mode(self.model), torch.inference_mode():
                self._emb, self._padded = self._run.embed(self._x)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the current image, ``None`` before :meth:`set_image`."""
        return None if self._x is None else (int(self._x.shape[-2]), int(self._x.shape[-1]))

    def _text(self, labels: Labels) -> tuple[Tensor, Tensor, LabelSplit | None]:
        if self._x is None:
            raise RuntimeError("call Predictor.set_image(image) before predicting")
        if isinstance(labels, Tensor):
            _check_text(self.model, [labels])
            return labels, torch.arange(labels.shape[0]), None
        split = as_label_split(labels)
        text, owner = encode_labels(self.model, split)
        return text, owner, split

    def _name_logits(self, text: Tensor) -> Tensor:
        h, w = self.image_size
        if self._emb is None:
            logits = predict_logits_multi(self.model, self._x, [text], self.protocol)[0]
        else:
            with eval_mode(self.model), torch.inference_mode():
                logits = self._run.logits(self._emb, text.to(self._emb.device), self._padded)[..., :h, :w]
        return refine_logits(self._x, [logits], self.protocol)[0][0]

    def encoded_scores(self, text: Tensor, owner: Tensor) -> Tensor:
        """Class scores ``(1, C, H, W)`` (model device) of already embedded names: ``text`` ``(T, D)`` and the class
        of each name ``owner`` (``lseg_nb.engine.postprocess.encode_labels``), so a label set embedded once
        serves many images."""
        scale = getattr(self.model, "logit_scale", None)
        return protocol_scores(self._name_logits(text)[None], owner, self.protocol, scale)

    def predict(self, labels: Labels) -> Tensor:
        """Class scores ``(K, H, W)`` (CPU float32) for typed labels, a :class:`LabelSplit`, or text embeddings
        ``(K, D)``: the model's logits, maximum over each class's names (probabilities when the protocol has a
        ``logit_scale`` or ``prob_thd``, see :func:`~lseg_nb.engine.postprocess.class_scores`)."""
        text, owner, _ = self._text(labels)
        return self.encoded_scores(text, owner)[0].cpu()

    def predict_mask(self, labels: Labels) -> Tensor:
        """Class index per pixel ``(H, W)`` (int64, CPU), with the protocol's background rules (``prob_thd``,
        ``area_thd`` need a label set with a background class)."""
        text, owner, split = self._text(labels)
        scores = self.encoded_scores(text, owner)
        return protocol_predict(scores, self.protocol, split.background if split else None)[0].cpu()

    def similarity(self, labels: Labels) -> Tensor:
        """Cosine similarity ``(K, H, W)`` (CPU float32) of each class's text with the pixel embeddings (the
        maximum over a class's names): raw similarities before the logit scale and any head block, resized to the
        image with the model's own rule, like its logits."""
        text, owner, _ = self._text(labels)
        h, w = self.image_size
        with eval_mode(self.model), torch.inference_mode():
            emb, padded = (self._emb, self._padded) if self._emb is not None else self._run.embed(self._x)
            text = F.normalize(text.to(device=emb.device, dtype=emb.dtype), dim=-1)
            sim = torch.einsum("bdhw,kd->bkhw", F.normalize(emb, dim=1), text).float()
            sim = upsample_like_model(self.model, sim, padded)[..., :h, :w]
        return max_over_names(sim, owner)[0].cpu()


__all__ = ["Predictor", "as_label_split", "describe_inference", "to_input"]
