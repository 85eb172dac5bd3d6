"""Dense inference: single pass, sliding window, multi-scale + flip, for any model with LSeg's interface
(``encode_image``, ``logits_from_embeddings``, ``text_dim``, ``size_multiple``, ``config.crop_size``; optionally
``upsample_logits``, the resize ``logits_from_embeddings`` applies, which enables the exact flip fusion below).

Images must already be normalised with the model's ``config.mean``/``config.std``. The protocol is one
:class:`~lseg_nb.config.EvalConfig`, passed whole down to the window loop; the window is ``config.crop_size``.
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
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.config import EvalConfig
from lseg_nb.data.images import MAX_PIXELS
from lseg_nb.engine.pamr import pamr
from lseg_nb.engine.postprocess import short_side_size
from lseg_nb.models import LSeg
from lseg_nb.models.text_encoder import check_text_embeddings
from lseg_nb.utils.device import autocast, model_device
from lseg_nb.utils.errors import InputError

Mode = Literal["single", "sliding", "multiscale"]
MODES = ("single", "sliding", "multiscale")
# the official multi-scale module resizes images (and logits back) with align_corners=True
_UP = dict(mode="bilinear", align_corners=True)
_COMPILED: dict[type, Callable[..., Tensor]] = {}
_DEFAULT = EvalConfig()


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


def _check_images(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images must be (B, 3, H, W) normalised float tensors, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InputError(f"images must be float (normalised with the model's mean/std), got {images.dtype}")


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
    fit: str = "pad"

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Pixel embeddings of ``x`` fitted to the size multiple, and the size their logits are resized to:
        ``pad``: zero-padded, the padded size (logits cropped back by the callers); ``crop``: the remainder rows
        and columns dropped, the input's own size (the coarse grid is stretched over all of it, as the
        training-free references do)."""
        if self.fit == "crop":
            m = self.model.size_multiple
            h, w = x.shape[-2:]
            if h < m or w < m:
                raise InputError(
                    f"an input of {h}x{w} is smaller than one {m}-pixel patch: use input_fit='pad'"
                )
            xp, size = x[..., : h - h % m, : w - w % m], (h, w)
        else:
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


def window_weight(crop_h: int, crop_w: int, kind: str, device: torch.device | None = None) -> Tensor:
    """``(crop_h, crop_w)`` float32 weight of one window's logits: ones (``uniform``: overlaps averaged), or a
    separable raised cosine (``smooth``) that is 1 at the centre and ``0.1`` at the border, so a pixel takes
    most of its value from the window it sits deepest in (no seams where windows meet). Symmetric, so a window
    and its mirror carry the same weight."""
    if kind == "uniform":
        return torch.ones(crop_h, crop_w, device=device)
    if kind != "smooth":
        raise InputError(f"window weight must be 'uniform' or 'smooth', got {kind!r}")

    def ramp(n: int) -> Tensor:
        pos = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n  # pixel centres in (0, 1)
        r = 0.1 + 0.9 * torch.sin(math.pi * pos) ** 2
        return torch.minimum(r, r.flip(0))  # exactly mirror-symmetric (the flip fusion relies on it)

    return ramp(crop_h)[:, None] * ramp(crop_w)[None, :]


def _windowed(
    run: _Runner, x: Tensor, text_embs: Sequence[Tensor], crop: int, protocol: EvalConfig, flip: bool
) -> list[Tensor]:
    """Sliding-window logits of ``x`` plus (with ``flip``) those of its mirror mapped back: ``(B, K_i, H, W)``.

    A view no larger than one window is a single pass (padded to the size multiple only). Otherwise each view is
    zero-padded to at least ``crop`` and covered by ``crop x crop`` windows at stride ``crop * stride_ratio``
    whose logits are averaged over their overlaps (weighted by :func:`window_weight`). See the module
    docstring for batching and fusion.
    """
    b, (h, w) = x.shape[0], x.shape[-2:]
    sliding = h > crop or w > crop
    # pad: a side shorter than the window is padded to it; crop (the references): the window shrinks to it
    pad = sliding and run.fit == "pad"
    views = [_pad_to(x, crop, crop) if pad else x]
    ph, pw = views[0].shape[-2:]
    ch, cw = (min(crop, ph), min(crop, pw)) if sliding else (h, w)
    stride = max(1, int(crop * protocol.stride_ratio))
    hs, ws = (_window_starts(ph, ch, stride), _window_starts(pw, cw, stride)) if sliding else ([0], [0])
    fuse = (
        flip
        and run.can_upsample
        and pw == w
        and cw % run.model.size_multiple == 0
        and {pw - cw - a for a in ws} == set(ws)
    )
    if flip and not fuse:
        views.append(_pad_to(x.flip(-1), crop, crop) if pad else x.flip(-1))
    # one group = the crops fused into one window result: (view, h0, w0, mirrored)
    windows = [(h0, w0) for h0 in hs for w0 in ws]
    if fuse:
        groups = [[(0, h0, w0, False), (0, h0, w0, True)] for h0, w0 in windows]
    else:
        groups = [[(v, h0, w0, False)] for v in range(len(views)) for h0, w0 in windows]
    weight = window_weight(ch, cw, protocol.window_weight if sliding else "uniform", x.device)
    count = x.new_zeros(1, 1, ph, pw, dtype=torch.float32)
    for h0, w0 in windows:
        count[..., h0 : h0 + ch, w0 : w0 + cw] += weight
    sums = [[x.new_zeros(b, t.shape[0], ph, pw, dtype=torch.float32) for t in text_embs] for _ in views]
    per_chunk = max(1, protocol.window_batch // (b * len(groups[0])))
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
            up = up[..., :ch, :cw].unflatten(0, (len(chunk), b)) * weight
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
    run: _Runner, x: Tensor, text_embs: Sequence[Tensor], crop: int, protocol: EvalConfig
) -> list[Tensor]:
    h, w = x.shape[-2:]
    totals = [x.new_zeros(x.shape[0], t.shape[0], h, w, dtype=torch.float32) for t in text_embs]
    for scale in protocol.scales:
        sh, sw = scaled_size(h, w, scale, protocol.base_size)
        xs = x if (sh, sw) == (h, w) else F.interpolate(x, size=(sh, sw), **_UP)
        logits = _windowed(run, xs, text_embs, crop, protocol, protocol.flip)
        for total, logit in zip(totals, logits, strict=True):
            total += logit if (sh, sw) == (h, w) else F.interpolate(logit, size=(h, w), **_UP)
    n = len(protocol.scales) * (2 if protocol.flip else 1)
    return [t / n for t in totals]


def check_work(h: int, w: int, protocol: EvalConfig, crop: int) -> None:
    """Refuse a protocol whose largest view exceeds the image pixel limit (:data:`MAX_PIXELS`) before any work:
    a scale or short side derived from user input must not ask for a tensor no image may have."""
    sizes = [(h, w)]
    if protocol.short_side is not None:
        sizes.append(short_side_size(h, w, protocol.short_side, protocol.long_cap))
    if protocol.mode == "multiscale":
        base = sizes[-1]
        sizes += [scaled_size(*base, s, protocol.base_size) for s in protocol.scales]
    big = max(sizes, key=lambda hw: hw[0] * hw[1])
    if big[0] * big[1] > MAX_PIXELS:
        raise InputError(
            f"the protocol {protocol.describe(crop)} turns a {h}x{w} image into a {big[0]}x{big[1]} view "
            f"({big[0] * big[1] / 1e6:.0f} Mpx), more than the {MAX_PIXELS / 1e6:.0f} Mpx limit of any image: "
            "use smaller --eval.scales / --eval.base-size / --eval.short-side"
        )


def predict_logits_multi(
    model: LSeg, images: Tensor, text_embs: Sequence[Tensor], protocol: EvalConfig | None = None
) -> list[Tensor]:
    """:func:`predict_logits` for several label sets at once: image features are computed once per window."""
    protocol = protocol or _DEFAULT
    if protocol.mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {protocol.mode!r}")
    _check_images(images)
    _check_text(model, text_embs)
    crop = int(model.config.crop_size)
    h, w = images.shape[-2:]
    check_work(h, w, protocol, crop)
    device = model_device(model)
    run = _Runner(model, device, protocol.amp, protocol.compile, protocol.input_fit)
    autocast(protocol.amp, device)  # an unknown choice or fp16 on the CPU fails here, before any work
    with eval_mode(model), torch.inference_mode():
        x = images.to(device=device, dtype=next(model.parameters()).dtype, non_blocking=True)
        texts = [t.to(device) for t in text_embs]
        if protocol.short_side is not None:
            size = short_side_size(h, w, protocol.short_side, protocol.long_cap)
            # mmseg resizes the uint8 image (cv2 bilinear, half-pixel centres): the same sampling in float
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False) if size != (h, w) else x
        if protocol.mode == "single":
            out = _single(run, x, texts)
        elif protocol.mode == "sliding":
            out = _windowed(run, x, texts, crop, protocol, False)
        else:
            out = _multiscale(run, x, texts, crop, protocol)
        if tuple(x.shape[-2:]) != (h, w):  # back to the label map with the model's own resize rule
            out = [upsample_like_model(model, o, (h, w)) for o in out]
        return out


def refine_logits(images: Tensor, logits: Sequence[Tensor], protocol: EvalConfig) -> list[Tensor]:
    """PAMR refinement of per-name logits ``(B, T, H, W)`` when ``protocol.pamr_steps`` > 0 (else unchanged).

    The colours PAMR compares are those the network saw: the (short-side resized) input brought back to the
    label-map size, bilinear with ``align_corners=False``, as NACLIP does (sinahmr/NACLIP@0cac3a6
    ``naclip.py:129-135``). Refinement is linear in the logits, so refining the model's logits equals refining
    cosines and scaling afterwards (the references refine cosines).
    """
    if not protocol.pamr_steps:
        return list(logits)
    h, w = images.shape[-2:]
    guide = images.float()
    if protocol.short_side is not None:
        size = short_side_size(h, w, protocol.short_side, protocol.long_cap)
        if size != (h, w):
            guide = F.interpolate(guide, size=size, mode="bilinear", align_corners=False)
            guide = F.interpolate(guide, size=(h, w), mode="bilinear", align_corners=False)
    guide = guide.to(logits[0].device)
    return [pamr(guide, t, protocol.pamr_steps, protocol.pamr_dilations) for t in logits]


def upsample_like_model(model: nn.Module, logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize score maps ``(B, K, h, w)`` to ``size`` with the model's own rule (``model.upsample_logits``: LSeg
    ``align_corners=True``, dense CLIP ``False``); bilinear with ``align_corners=True`` for a model without one."""
    if callable(getattr(model, "upsample_logits", None)):
        return model.upsample_logits(logits, size)
    return logits if tuple(logits.shape[-2:]) == tuple(size) else F.interpolate(logits, size=size, **_UP)


def predict_logits(
    model: LSeg, images: Tensor, text_emb: Tensor, protocol: EvalConfig | None = None
) -> Tensor:
    """Normalised images ``(B, 3, H, W)`` + text embeddings ``(K, D)`` -> float32 logits ``(B, K, H, W)`` (model
    device), with the inference of ``protocol`` (default: ``EvalConfig()``, one pass).

    Args:
        model: LSeg, a dense-CLIP baseline, or any model with their interface (see the module docstring).
        images: normalised with the model's ``config.mean``/``config.std``.
        text_emb: ``model.encode_text(labels)``.
        protocol: the evaluation protocol; only its inference fields are used here (``short_side``/``long_cap``,
            ``mode``, ``stride_ratio``, ``scales``, ``base_size``, ``flip``, ``window_weight``, ``amp``,
            ``window_batch``, ``compile``); the window is ``model.config.crop_size``.

    ``single``: one forward pass; the image is zero-padded (bottom/right) to a multiple of the backbone's
    coarsest stride (32 for CNNs, the patch size for ViTs) and the logits are cropped back.
    ``sliding``: windows at stride ``crop_size * stride_ratio``; overlapping logits are averaged. Images no larger
    than one window get a single pass.
    ``multiscale``: for each scale the image is resized (bilinear, ``align_corners=True``), run with ``sliding``
    (which is a single pass when it fits a window) and, with ``flip``, also mirrored; the logits are resized back
    to ``H x W`` and averaged. With ``short_side`` the image is first resized (mmseg rule,
    :func:`short_side_size`) and the logits are resized back to ``H x W`` at the end (:func:`upsample_like_model`).

    Execution: ``amp`` runs the network under autocast, logits are accumulated in float32; ``window_batch``
    windows (with their mirrors) go through the network at once; ``compile`` wraps the image encoder in
    ``torch.compile`` (the first call of each input size compiles).

    Differences from the official ``LSeg_MultiEvalModule``: scales are relative to the image size unless
    ``base_size`` is given (official: long side = ``ceil(520 * scale)``, i.e. ``base_size=520``); padding is
    0 in normalised space (the mean colour) instead of black; images smaller than a window are padded only to the
    size multiple, not to ``crop_size``; the last window in each direction is shifted to end at the image border
    instead of being padded; the mirrored view is windowed on its own (official: each padded window is mirrored),
    which keeps the prediction of a mirrored image the mirrored prediction; flip and scale logits are averaged
    rather than summed (same argmax); batches > 1 work.
    The model runs in eval mode under ``torch.inference_mode``; each submodule's mode is restored afterwards.
    """
    return predict_logits_multi(model, images, [text_emb], protocol)[0]
