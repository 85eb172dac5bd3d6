"""Dense inference: single pass, sliding window, multi-scale + flip, for any model with LSeg's interface
(``encode_image``, ``logits_from_embeddings``, ``text_dim``, ``size_multiple``, ``config.crop_size``; optionally
``upsample_logits``, the resize ``logits_from_embeddings`` applies, which enables the exact flip fusion below).

Images must already be normalised with the model's ``config.mean``/``config.std``. The protocol parameters
come from one :class:`~lseg_nb.config.EvalConfig` (:func:`protocol_kwargs`); the window is ``config.crop_size``.
The multi-scale mode follows the official LSeg ``LSeg_MultiEvalModule`` (scales 0.5-1.75, horizontal flip, 480 px
windows, stride 2/3, bilinear resizing with ``align_corners=True``); the differences are listed in
:func:`predict_logits`. :class:`Predictor` caches one image's pixel embeddings so that new label sets cost only
the text side.

Batching (what makes multi-scale evaluation fast on a GPU, and what it may change): all windows of one view size
(a scale's windows and those of its mirror) go through the network together, ``window_batch`` at a time. Window
logits are computed at the embedding resolution in float32 and upsampled once per window. A window and its
mirror are fused *before* that upsampling (``L + flip(L_mirror)``, one upsample instead of two) exactly when the
mirrored view's windows are the mirrors of the view's windows: no column of padding (the scaled width needs no
padding to the window nor to the size multiple) and mirror-symmetric window columns (``pw - crop - a`` is a
start for every start ``a``; always true for one or two columns). This is exact because bilinear resizing (with
either ``align_corners``) is linear and commutes with mirroring; every other view falls back to upsampling each
window on its own. Windows are stitched at the window resolution, never on the embedding grid: there a bilinear
upsample would blend neighbouring windows across their borders and the overlap counts, which changes values. The
views of a scale are summed before the single resize back to the input size (linear, so exact). Results agree
with window-by-window evaluation to float rounding (``tests/test_inference.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.config import OFFICIAL_SCALES, EvalConfig
from lseg_nb.models import LSeg
from lseg_nb.models.text_encoder import check_text_embeddings
from lseg_nb.utils.device import autocast, model_device

Mode = Literal["single", "sliding", "multiscale"]
MODES = ("single", "sliding", "multiscale")
_UP = dict(mode="bilinear", align_corners=True)
_COMPILED: dict[type, Callable[..., Tensor]] = {}


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
        "amp": protocol.amp,
        "window_batch": protocol.window_batch,
        "compile": protocol.compile,
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
    for t in text_embs:
        check_text_embeddings(
            t,
            model.text_dim,
            hint="use model.encode_text(labels) of the text encoder the model was built with",
        )


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    """Zero-pad (the normalised mean colour) at the bottom/right to at least ``h x w``."""
    ph, pw = max(h - x.shape[-2], 0), max(w - x.shape[-1], 0)
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def _padded_size(model: nn.Module, h: int, w: int) -> tuple[int, int]:
    m = model.size_multiple
    return math.ceil(h / m) * m, math.ceil(w / m) * m


@dataclass(frozen=True)
class _Runner:
    """How inputs go through the network: autocast choice and the (optionally compiled) image encoder."""

    model: nn.Module
    device: torch.device
    amp: str = "none"
    compile: bool = False

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Pixel embeddings of ``x`` zero-padded to the size multiple, and the padded size."""
        size = _padded_size(self.model, *x.shape[-2:])
        xp = _pad_to(x, *size)
        with autocast(self.amp, self.device):
            if self.compile:
                return _compiled_encoder(self.model)(self.model, xp), size
            return self.model.encode_image(xp), size

    def coarse(self, emb: Tensor, text: Tensor) -> Tensor:
        """float32 logits at the embedding resolution."""
        with autocast(self.amp, self.device):
            return self.model.logits_from_embeddings(emb, text, tuple(emb.shape[-2:])).float()

    @property
    def can_upsample(self) -> bool:
        return callable(getattr(self.model, "upsample_logits", None))

    def logits(self, emb: Tensor, text: Tensor, size: tuple[int, int]) -> Tensor:
        """float32 logits at ``size`` (upsampled in float32 when the model exposes its resize)."""
        if self.can_upsample:
            return self.model.upsample_logits(self.coarse(emb, text), size)
        with autocast(self.amp, self.device):
            return self.model.logits_from_embeddings(emb, text, size).float()


def _compiled_encoder(model: nn.Module) -> Callable[..., Tensor]:
    # compiled per class (called with the instance): holding an instance here would keep every model alive
    cls = type(model)
    if cls not in _COMPILED:
        _COMPILED[cls] = torch.compile(cls.encode_image)
    return _COMPILED[cls]


def embed_padded(model: LSeg, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Pixel embeddings of ``x`` zero-padded to the backbone's size multiple, and the padded size."""
    return _Runner(model, x.device).embed(x)


def _single(run: _Runner, x: Tensor, text_embs: Sequence[Tensor]) -> list[Tensor]:
    """One forward pass (padded, logits cropped back): a list of ``(B, K_i, H, W)``, one per text set."""
    h, w = x.shape[-2:]
    emb, size = run.embed(x)
    return [run.logits(emb, t, size)[..., :h, :w] for t in text_embs]


def _window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, length)``; the last window is shifted to end at the border."""
    n = math.ceil(max(length - crop, 0) / stride) + 1
    return sorted({min(i * stride, length - crop) for i in range(n)})


def _windowed(
    run: _Runner,
    x: Tensor,
    text_embs: Sequence[Tensor],
    crop: int,
    stride_ratio: float,
    flip: bool,
    window_batch: int,
) -> list[Tensor]:
    """Sliding-window logits of ``x`` plus (with ``flip``) those of its mirror mapped back: ``(B, K_i, H, W)``.

    A view no larger than one window is a single pass (padded to the size multiple only). Otherwise each view is
    zero-padded to at least ``crop`` and covered by ``crop x crop`` windows at stride ``crop * stride_ratio``
    whose logits are averaged over their overlaps. See the module docstring for batching and fusion.
    """
    b, (h, w) = x.shape[0], x.shape[-2:]
    sliding = h > crop or w > crop
    views = [_pad_to(x, crop, crop) if sliding else x]
    ph, pw = views[0].shape[-2:]
    ch, cw = (crop, crop) if sliding else (h, w)
    stride = max(1, int(crop * stride_ratio))
    hs, ws = (_window_starts(ph, crop, stride), _window_starts(pw, crop, stride)) if sliding else ([0], [0])
    fuse = (
        flip
        and run.can_upsample
        and pw == w
        and cw % run.model.size_multiple == 0
        and {pw - cw - a for a in ws} == set(ws)
    )
    if flip and not fuse:
        views.append(_pad_to(x.flip(-1), crop, crop) if sliding else x.flip(-1))
    # one group = the crops fused into one window result: (view, h0, w0, mirrored)
    windows = [(h0, w0) for h0 in hs for w0 in ws]
    if fuse:
        groups = [[(0, h0, w0, False), (0, h0, w0, True)] for h0, w0 in windows]
    else:
        groups = [[(v, h0, w0, False)] for v in range(len(views)) for h0, w0 in windows]
    count = x.new_zeros(1, 1, ph, pw, dtype=torch.float32)
    for h0, w0 in windows:
        count[..., h0 : h0 + ch, w0 : w0 + cw] += 1
    sums = [[x.new_zeros(b, t.shape[0], ph, pw, dtype=torch.float32) for t in text_embs] for _ in views]
    per_chunk = max(1, window_batch // (b * len(groups[0])))
    for start in range(0, len(groups), per_chunk):
        chunk = groups[start : start + per_chunk]
        crops = []
        for v, h0, w0, mirrored in (item for g in chunk for item in g):
            c = views[v][..., h0 : h0 + ch, w0 : w0 + cw]
            crops.append(c.flip(-1) if mirrored else c)
        emb, size = run.embed(torch.cat(crops))
        for ti, text in enumerate(text_embs):
            if fuse:
                coarse = run.coarse(emb, text).unflatten(0, (len(chunk), 2, b))
                fused = (coarse[:, 0] + coarse[:, 1].flip(-1)).flatten(0, 1)
                up = run.model.upsample_logits(fused, size)
            else:
                up = run.logits(emb, text, size)
            up = up[..., :ch, :cw].unflatten(0, (len(chunk), b))
            for gi, g in enumerate(chunk):
                v, h0, w0, _ = g[0]
                sums[v][ti][..., h0 : h0 + ch, w0 : w0 + cw] += up[gi]
    out = []
    for ti in range(len(text_embs)):
        result = (sums[0][ti] / count)[..., :h, :w]
        if len(views) == 2:
            result = result + (sums[1][ti] / count)[..., :h, :w].flip(-1)
        out.append(result)
    return out


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
    run: _Runner,
    x: Tensor,
    text_embs: Sequence[Tensor],
    crop: int,
    stride_ratio: float,
    scales: Sequence[float],
    flip: bool,
    base_size: int | None,
    window_batch: int,
) -> list[Tensor]:
    h, w = x.shape[-2:]
    totals = [x.new_zeros(x.shape[0], t.shape[0], h, w, dtype=torch.float32) for t in text_embs]
    for scale in scales:
        sh, sw = scaled_size(h, w, scale, base_size)
        xs = x if (sh, sw) == (h, w) else F.interpolate(x, size=(sh, sw), **_UP)
        for total, logit in zip(
            totals, _windowed(run, xs, text_embs, crop, stride_ratio, flip, window_batch), strict=True
        ):
            total += logit if (sh, sw) == (h, w) else F.interpolate(logit, size=(h, w), **_UP)
    n = len(scales) * (2 if flip else 1)
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
    amp: str = "none",
    window_batch: int = 16,
    compile: bool = False,
) -> list[Tensor]:
    """:func:`predict_logits` for several label sets at once: image features are computed once per window."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    crop = int(crop_size if crop_size is not None else model.config.crop_size)
    if crop < 1 or not 0 < stride_ratio <= 1:
        raise ValueError(f"need crop_size >= 1 and 0 < stride_ratio <= 1, got {crop}, {stride_ratio}")
    if mode == "multiscale" and (not scales or min(scales) <= 0):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales}")
    if window_batch < 1:
        raise ValueError(f"window_batch must be >= 1, got {window_batch}")
    _check_images(images)
    _check_text(model, text_embs)
    device = model_device(model)
    run = _Runner(model, device, amp, compile)
    autocast(amp, device)  # an unknown choice or fp16 on the CPU fails here, before any work
    with eval_mode(model), torch.inference_mode():
        x = images.to(device=device, dtype=next(model.parameters()).dtype, non_blocking=True)
        texts = [t.to(device) for t in text_embs]
        if mode == "single":
            return _single(run, x, texts)
        if mode == "sliding":
            return _windowed(run, x, texts, crop, stride_ratio, False, window_batch)
        return _multiscale(run, x, texts, crop, stride_ratio, scales, flip, base_size, window_batch)


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
    amp: str = "none",
    window_batch: int = 16,
    compile: bool = False,
) -> Tensor:
    """Normalised images ``(B, 3, H, W)`` + text embeddings ``(K, D)`` -> float32 logits ``(B, K, H, W)`` (model
    device).

    ``single``: one forward pass; the image is zero-padded (bottom/right) to a multiple of the backbone's
    coarsest stride (32 for CNNs, the patch size for ViTs) and the logits are cropped back.
    ``sliding``: ``crop_size`` windows (default ``model.config.crop_size``) at stride ``crop_size * stride_ratio``;
    overlapping logits are averaged. Images no larger than one window get a single pass.
    ``multiscale``: for each of ``scales`` the image is resized (bilinear, ``align_corners=True``), run with
    ``sliding`` (which is a single pass when it fits a window) and, with ``flip``, also mirrored; the logits are
    resized back to ``H x W`` and averaged. ``flip`` and ``scales`` are used only by this mode.

    Execution: ``amp`` (``"none"``, ``"bf16"``, ``"fp16"``; fp16 needs CUDA) runs the network under autocast,
    logits are accumulated in float32; ``window_batch`` windows (with their mirrors) go through the network at
    once (at least one window per pass); ``compile`` wraps the image encoder in ``torch.compile`` (the first
    call of each input size compiles).

    Differences from the official ``LSeg_MultiEvalModule``: scales are relative to the image size unless
    ``base_size`` is given (official: long side = ``ceil(520 * scale)``, i.e. pass ``base_size=520``); padding is
    0 in normalised space (the mean colour) instead of black; images smaller than a window are padded only to the
    size multiple, not to ``crop_size``; the last window in each direction is shifted to end at the image border
    instead of being padded; the mirrored view is windowed on its own (official: each padded window is mirrored),
    which keeps the prediction of a mirrored image the mirrored prediction; flip and scale logits are averaged
    rather than summed (same argmax); batches > 1 work.
    The model runs in eval mode under ``torch.inference_mode``; each submodule's mode is restored afterwards.
    """
    return predict_logits_multi(
        model,
        images,
        [text_emb],
        mode,
        crop_size,
        stride_ratio,
        scales,
        flip,
        base_size,
        amp,
        window_batch,
        compile,
    )[0]


class Predictor:
    """Interactive label queries on one image: pixel embeddings are computed once by :meth:`set_image`.

    >>> p = Predictor(model); p.set_image(image)           # (3, H, W) normalised
    >>> mask = p.predict_mask(["grass", "cow", "sky"])    # (H, W) indices into the label list

    ``amp``/``compile``: as in :func:`predict_logits` (single pass).
    """

    def __init__(self, model: LSeg, amp: str = "none", compile: bool = False) -> None:
        self.model = model
        self._run = _Runner(model, model_device(model), amp, compile)
        autocast(amp, self._run.device)  # fail on a bad choice now, not at the first image
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
            self._emb, self._padded = self._run.embed(image.to(self._run.device))
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
            logits = self._run.logits(emb, text.to(emb.device), self._padded)
        h, w = self._size
        return logits[0, :, :h, :w].cpu()

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
