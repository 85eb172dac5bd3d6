"""Post-processing of dense logits as pure tensor functions: several names per class, the logit scale + softmax of
the training-free protocols, the background thresholds, and the size rules of their test pipeline.

One rule each, shared by evaluation, :class:`~lseg_nb.engine.predictor.Predictor` and batch prediction. Shapes:
``B`` images, ``T`` texts (names), ``C`` classes, ``H x W`` pixels. ``owner[t]`` is the class of text ``t``
(:attr:`lseg_nb.utils.labels.LabelSplit.owner`); every class owns at least one text and ``C = max(owner) + 1``.

The reference rule (SCLIP ``postprocess_result``, wangf3014/SCLIP@b56bd30 ``clip_segmentor.py:148-170``; NACLIP
sinahmr/NACLIP@0cac3a6 ``naclip.py:139-152``; ClearCLIP mc-lan/ClearCLIP@ad68a40 ``clearclip_segmentor.py:216-230``):

1. ``p = softmax(logit_scale * cosine)`` over **all T names** (not over classes);
2. class score = the maximum of ``p`` over the class's names (so class scores need not sum to 1: a class with a
   dozen names, VOC21's background, splits its mass among them and keeps only its best name's share);
3. SCLIP only, ``area_thd``: classes other than the background predicted on at most ``area_thd`` times the number of
   pixels predicted as *any non-background class* (not the image area) get score 0 everywhere, and every pixel is
   re-assigned to the best remaining class -- which may be another object class, not necessarily the background
   (l.162-167);
4. prediction = argmax; pixels whose top score (after 3) is below ``prob_thd`` become class 0, the background
   (l.169-170). Ties resolve to the first maximal index, as ``torch.argmax``.

Without a fixed logit scale (``logit_scale=None``, the LSeg path) the class logit is the maximum over its names of the
model's own logits: its argmax equals the argmax of the per-class max of the softmax probabilities, since softmax
is monotonic per pixel; the thresholds then compare raw logits, so protocols set them only with a logit scale.

Seen-bias calibration subtracts an offset from the logits of the seen classes' names before any of this;
:func:`protocol_scores` / :func:`protocol_predict` apply an :class:`~lseg_nb.config.EvalConfig` to a model's logits.

Size rules of the references' mmseg test pipeline (see ``docs/protocols-trainingfree.md``):
:func:`short_side_size` is mmcv's ``Resize(scale=(long_cap, S), keep_ratio=True)``; :func:`crop_to_multiple` is what
their CLIP ViT's stride-16 patch convolution does to a side that is not a multiple of 16 (the last ``H mod 16`` rows
are never seen) where lseg_nb pads; :func:`slide_windows` is their sliding-window loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lseg_nb.config import EvalConfig
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit


def _owner_index(owner: Sequence[int] | Tensor, num_texts: int, device: torch.device) -> tuple[Tensor, int]:
    idx = torch.as_tensor(owner, dtype=torch.long).flatten().to(device)
    if idx.numel() != num_texts:
        raise ValueError(
            f"owner has {idx.numel()} entries for {num_texts} name logits: pass LabelSplit.owner of the label set "
            "whose LabelSplit.texts were embedded"
        )
    if num_texts == 0 or int(idx.min()) < 0:
        raise ValueError(f"owner must hold class indices >= 0 for at least one name, got {idx.tolist()[:20]}")
    num_classes = int(idx.max()) + 1
    missing = sorted(set(range(num_classes)) - set(idx.tolist()))
    if missing:
        raise ValueError(f"classes {missing[:20]} own no name in owner: every class needs at least one text")
    return idx, num_classes


def max_over_names(scores: Tensor, owner: Sequence[int] | Tensor) -> Tensor:
    """Per-name scores ``(B, T, H, W)`` -> per-class maximum ``(B, C, H, W)`` (same dtype).

    Args:
        scores: logits or probabilities of every name.
        owner: class index of each name (``LabelSplit.owner``).
    """
    if scores.ndim != 4:
        raise ValueError(f"scores must be (B, T, H, W), got {tuple(scores.shape)}")
    idx, num_classes = _owner_index(owner, scores.shape[1], scores.device)
    if num_classes == scores.shape[1] and torch.equal(idx, torch.arange(num_classes, device=idx.device)):
        return scores  # one name per class, in class order
    b, _, h, w = scores.shape
    out = scores.new_full((b, num_classes, h, w), float("-inf"))
    return out.scatter_reduce(1, idx.view(1, -1, 1, 1).expand_as(scores), scores, reduce="amax")


def class_probabilities(logits: Tensor, owner: Sequence[int] | Tensor, logit_scale: float) -> Tensor:
    """The reference rule: ``softmax(logits * logit_scale)`` over all names, then the max over each class's names.

    Args:
        logits: cosine similarities of every name ``(B, T, H, W)`` (the scale is applied here; a model's own
            logits are ``model.logit_scale * cosine``: divide by it first).
        owner: class index of each name (``LabelSplit.owner``).
        logit_scale: softmax temperature (SCLIP/NACLIP default 40; SCLIP VOC21 65, Context60/COCO-Object 50).
    Returns:
        float32 class probabilities ``(B, C, H, W)``.
    """
    if not logit_scale > 0:
        raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
    probs = torch.softmax(logits.float() * float(logit_scale), dim=1)
    return max_over_names(probs, owner)


def class_scores(logits: Tensor, owner: Sequence[int] | Tensor, logit_scale: float | None) -> Tensor:
    """Class scores from per-name logits ``(B, T, H, W)`` -> float32 ``(B, C, H, W)``.

    Args:
        logits: per-name logits; with ``logit_scale`` a number, cosine similarities.
        owner: class index of each name (``LabelSplit.owner``).
        logit_scale: ``None`` = the model's own logits, class logit = max over its names (LSeg); a number =
            :func:`class_probabilities` (the training-free protocols).
    """
    if logit_scale is None:
        return max_over_names(logits.float(), owner)
    return class_probabilities(logits, owner, logit_scale)


def _check_background(scores: Tensor, background: int) -> None:
    if scores.ndim != 4:
        raise ValueError(f"class scores must be (B, C, H, W), got {tuple(scores.shape)}")
    if not 0 <= background < scores.shape[1]:
        raise ValueError(f"background class {background} outside the {scores.shape[1]} classes")


def suppress_small_classes(scores: Tensor, area_thd: float, background: int = 0) -> Tensor:
    """SCLIP's ``area_thd``: zero the scores of classes predicted on too few pixels (returns a new tensor).

    With ``n_c`` the pixels whose argmax is class ``c`` and ``F`` the sum of ``n_c`` over the classes other than
    ``background`` (per image), every class ``c != background`` with ``n_c <= area_thd * F`` gets score 0 at every
    pixel (wangf3014/SCLIP@b56bd30 ``clip_segmentor.py:162-167``; counts compared in the scores' dtype as there).

    Args:
        scores: class probabilities ``(B, C, H, W)`` (:func:`class_probabilities`).
        area_thd: fraction of the non-background-predicted area (SCLIP VOC21: 0.1).
        background: index of the background class, never suppressed (the reference: 0).
    """
    _check_background(scores, background)
    if not 0 <= area_thd <= 1:
        raise ValueError(f"area_thd must be in [0, 1], got {area_thd}")
    b, c = scores.shape[:2]
    pred = scores.argmax(1).flatten(1)
    counts = scores.new_zeros(b, c).scatter_add_(1, pred, scores.new_ones(pred.shape))
    counts[:, background] = 0
    keep = counts > area_thd * counts.sum(1, keepdim=True)
    keep[:, background] = True
    return scores * keep[:, :, None, None].to(scores.dtype)


def threshold_background(scores: Tensor, prob_thd: float, background: int = 0) -> Tensor:
    """Argmax class ``(B, H, W)`` long; pixels whose top score is below ``prob_thd`` become ``background``.

    Strictly below, as the reference (``clip_segmentor.py:170``, ``naclip.py:152``); ``prob_thd=0`` changes
    nothing for probabilities.

    Args:
        scores: class probabilities ``(B, C, H, W)``.
        prob_thd: minimum top probability (SCLIP/NACLIP: 0.1 on VOC21, Context60, COCO-Object; else 0).
        background: the class given to low-confidence pixels (the reference: 0).
    """
    _check_background(scores, background)
    return scores.argmax(1).masked_fill(scores.amax(1) < prob_thd, background)


def predict_classes(
    scores: Tensor, prob_thd: float = 0.0, area_thd: float | None = None, background: int = 0
) -> Tensor:
    """Class prediction ``(B, H, W)`` long in the reference order: ``area_thd``, argmax, then ``prob_thd``.

    Args:
        scores: class probabilities ``(B, C, H, W)`` (:func:`class_probabilities`).
        prob_thd: see :func:`threshold_background`.
        area_thd: see :func:`suppress_small_classes`; ``None`` = off.
        background: index of the background class.
    """
    if area_thd is not None:
        scores = suppress_small_classes(scores, area_thd, background)
    return threshold_background(scores, prob_thd, background)


def short_side_size(height: int, width: int, short_side: int, long_cap: int = 2048) -> tuple[int, int]:
    """``(new_h, new_w)`` of mmcv's ``Resize(scale=(long_cap, short_side), keep_ratio=True)``.

    ``s = min(max_edge / max(h, w), min_edge / min(h, w))`` with ``max_edge, min_edge`` the larger and smaller of
    ``(long_cap, short_side)``; each side becomes ``int(side * s + 0.5)`` (round half up) -- mmcv v2.0.1
    ``mmcv/image/geometric.py:17-33,219-255`` (``_scale_size``, ``rescale_size``), called by
    ``mmcv/transforms/processing.py:167-183`` (``Resize._resize_img`` -> ``imrescale``).

    Args:
        height: input height in pixels.
        width: input width in pixels.
        short_side: target short side ``S`` (reached unless the long side would exceed ``long_cap``).
        long_cap: the long-side cap (the references: 2048).
    """
    if min(height, width) < 1 or min(short_side, long_cap) < 1:
        raise ValueError(
            f"sizes must be >= 1, got image {height}x{width}, short_side {short_side}, long_cap {long_cap}"
        )
    max_edge, min_edge = max(long_cap, short_side), min(long_cap, short_side)
    scale = min(max_edge / max(height, width), min_edge / min(height, width))
    return int(height * float(scale) + 0.5), int(width * float(scale) + 0.5)


def floor_to_multiple(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The part of an ``height x width`` input a stride-``multiple`` patch convolution sees: ``(h - h % m, w - w % m)``."""
    if multiple < 1 or height < multiple or width < multiple:
        raise ValueError(f"need sides >= multiple >= 1, got {height}x{width} and multiple {multiple}")
    return height - height % multiple, width - width % multiple


def crop_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Drop the last ``H mod m`` rows and ``W mod m`` columns of ``(..., H, W)``, as the references' ViT does.

    SCLIP/NACLIP/ClearCLIP feed any size to CLIP's ``conv1`` (kernel = stride = 16, no padding), which ignores the
    remainder (wangf3014/SCLIP@b56bd30 ``clip/model.py:217,233``), and then stretch the ``(H // 16, W // 16)`` logit
    grid over the *full* ``H x W`` (bilinear, ``align_corners=False``; ``clip_segmentor.py:68-76``). lseg_nb pads to
    the next multiple and crops the logits back instead, so grid cells sit at their true positions. To reproduce
    the reference: encode ``crop_to_multiple(x, 16)`` and upsample its logits to ``x``'s own size.
    """
    h, w = floor_to_multiple(images.shape[-2], images.shape[-1], multiple)
    return images[..., :h, :w]


def slide_windows(height: int, width: int, crop: int, stride: int) -> list[tuple[int, int, int, int]]:
    """The references' sliding windows ``(y1, y2, x1, x2)`` (half-open), in their loop order (rows, then columns).

    ``n = max(L - crop + stride - 1, 0) // stride + 1`` windows per side; window ``i`` ends at ``min(i * stride +
    crop, L)`` and starts ``crop`` before that (at 0 at the least): the last window is shifted to end at the border
    and a side shorter than ``crop`` gets one smaller window, no padding (wangf3014/SCLIP@b56bd30
    ``clip_segmentor.py:96-114``, the same in NACLIP ``naclip.py:87-104``; from mmseg's
    ``EncoderDecoder.slide_inference``). Logits are averaged over the windows covering each pixel.
    """
    if min(height, width, crop, stride) < 1:
        raise ValueError(f"need positive sizes, got {height}x{width}, crop {crop}, stride {stride}")

    def starts(length: int) -> list[tuple[int, int]]:
        out = []
        for i in range(max(length - crop + stride - 1, 0) // stride + 1):
            end = min(i * stride + crop, length)
            out.append((max(end - crop, 0), end))
        return out

    return [(y1, y2, x1, x2) for y1, y2 in starts(height) for x1, x2 in starts(width)]


# ---------------------------------------------------------------- the protocol's decision, on a model's logits


def model_logit_scale(model: nn.Module) -> float:
    """The factor between the model's logits and cosine similarities (LSeg ``1/0.07``, CLIP 100)."""
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        raise InputError(f"{type(model).__name__} has no logit_scale: it cannot be re-scaled or calibrated")
    return float(scale)


def encode_labels(model: nn.Module, labels: LabelSplit) -> tuple[Tensor, Tensor]:
    """Text embeddings ``(T, D)`` of every name of every class (:attr:`LabelSplit.texts`) on the model's device,
    and the class of each name (``owner``, int64 ``(T,)`` on the CPU).

    Refuses two classes whose names the text encoder cannot tell apart (identical embeddings, e.g. ``Cat`` and
    ``cat`` for an uncased encoder): their scores would be tied everywhere and one class could never win --
    unless the label set reproduces a reference list that repeats a name (``LabelSplit.shared_names``).
    """
    text = model.encode_text(list(labels.texts))
    owner = torch.tensor(labels.owner, dtype=torch.long)
    if labels.shared_names:
        return text, owner
    same = torch.cdist(text.float(), text.float()) < 1e-6
    same &= (owner[:, None] != owner[None, :]).to(same.device)
    if bool(same.any()):
        i, j = (int(v) for v in same.nonzero()[0])
        names = labels.texts
        raise InputError(
            f"labels {names[i]!r} and {names[j]!r} get the same text embedding from this model's text encoder "
            "(it cannot tell them apart, e.g. an uncased encoder): give classes distinguishable names, or put "
            f"both names in one class ('{names[i]}|{names[j]}')"
        )
    return text, owner


def protocol_scores(
    name_logits: Tensor, owner: Tensor, protocol: EvalConfig, model_scale: float | None
) -> Tensor:
    """Class scores ``(B, C, H, W)`` of a model's per-name logits under ``protocol``.

    Args:
        name_logits: the model's logits (``model_scale * cosine``) of every name, ``(B, T, H, W)``.
        owner: class index of each name (``LabelSplit.owner``).
        protocol: ``logit_scale`` / ``prob_thd`` / ``area_thd`` choose the rule (module docstring).
        model_scale: the model's own logit scale (``model.logit_scale``).

    Class logits (max over names) when the protocol needs no probabilities; else the reference probabilities at
    ``protocol.logit_scale`` (default: the model's own scale).
    """
    if not protocol.scores_probabilities:
        return class_scores(name_logits, owner, None)
    if model_scale is None:
        raise InputError(
            "probabilities at a logit scale (eval.logit_scale / thresholds) need the model's logit scale"
        )
    scale = protocol.logit_scale if protocol.logit_scale is not None else model_scale
    return class_probabilities(name_logits.float() / model_scale, owner, scale)


def protocol_predict(scores: Tensor, protocol: EvalConfig, background: int | None) -> Tensor:
    """Class index per pixel ``(B, H, W)`` of :func:`protocol_scores`, with the protocol's background rules."""
    if protocol.prob_thd == 0 and protocol.area_thd is None:
        return scores.argmax(1)
    if background is None:
        raise InputError(
            "eval.prob_thd / eval.area_thd turn pixels into the background class, but this label set has no "
            "background class: set one (LabelSplit background=...) or leave both thresholds off"
        )
    return predict_classes(scores, protocol.prob_thd, protocol.area_thd, background)


def shift_seen(name_logits: Tensor, owner: Tensor, seen: Tensor, offset: float) -> Tensor:
    """Seen-bias calibration: ``offset`` subtracted from the logits of every name of a ``seen`` class (a bool
    mask over classes)."""
    shift = (seen.to(name_logits.device)[owner.to(name_logits.device)] * offset).to(name_logits.dtype)
    return name_logits - shift[None, :, None, None]


def seen_unseen_max(class_logits: Tensor, seen: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per pixel the best seen class logit and its index, and the best unseen class logit and its index (first
    index on ties, as ``argmax``): ``(seen_max, seen_arg, unseen_max, unseen_arg)``, each ``(B, H, W)``. With
    these, the argmax after any seen offset costs one comparison per pixel (:func:`offset_argmax`)."""
    mask = seen.to(class_logits.device)[None, :, None, None]
    # -inf where a side has no class: that side never wins (no host round trip to ask whether it is empty)
    s_max, s_arg = class_logits.masked_fill(~mask, float("-inf")).max(1)
    u_max, u_arg = class_logits.masked_fill(mask, float("-inf")).max(1)
    return s_max, s_arg, u_max, u_arg


def offset_argmax(maxima: tuple[Tensor, Tensor, Tensor, Tensor], offset: float) -> Tensor:
    """``argmax(class_logits - offset * seen)`` from :func:`seen_unseen_max`, exactly (ties: the lower index)."""
    s_max, s_arg, u_max, u_arg = maxima
    shifted = s_max - offset
    unseen_wins = (u_max > shifted) | ((u_max == shifted) & (u_arg < s_arg))
    return torch.where(unseen_wins, u_arg, s_arg)
