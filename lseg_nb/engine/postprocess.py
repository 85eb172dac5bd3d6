"""From per-name logits to a prediction: one rule for evaluation, the Predictor and batch prediction.

A class may have several names (:class:`~lseg_nb.utils.labels.LabelSplit`); every name is embedded and scored,
and a class takes the maximum over its names. With the protocol's defaults (``logit_scale=None``,
``prob_thd=0``) the prediction is the argmax of those class logits. The training-free harnesses (SCLIP
``clip_segmentor.py`` ``postprocess_result``, NACLIP likewise) instead scale the cosines by ``logit_scale``,
take a softmax over ALL names and then the maximum probability over each class's names; ``prob_thd`` turns a
pixel whose top probability is below it into the background class, and ``area_thd`` discards classes predicted
on too small a part of the image. The argmax is the same either way; only the thresholds need probabilities.

Seen-bias calibration subtracts an offset from the logits of the seen classes' names before any of this.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lseg_nb.config import EvalConfig
from lseg_nb.utils.labels import LabelSplit


def model_logit_scale(model: nn.Module) -> float:
    """The factor between the model's logits and cosine similarities (LSeg ``1/0.07``, CLIP 100)."""
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        raise ValueError(f"{type(model).__name__} has no logit_scale: it cannot be re-scaled or calibrated")
    return float(scale)


def encode_labels(model: nn.Module, labels: LabelSplit) -> tuple[Tensor, Tensor]:
    """Text embeddings ``(N, D)`` of every name of every class (:attr:`LabelSplit.texts`) and the class of each
    (``owner``, int64 ``(N,)``), both on the model's device.

    Refuses two classes whose names the text encoder cannot tell apart (identical embeddings, e.g. ``Cat`` and
    ``cat`` for an uncased encoder): their scores would be tied everywhere and one class could never win.
    """
    text = model.encode_text(list(labels.texts))
    owner = torch.tensor(labels.owner, dtype=torch.long, device=text.device)
    if labels.shared_names:  # a reference label list that repeats a name: reproduced as it is
        return text, owner
    same = torch.cdist(text.float(), text.float()) < 1e-6
    same &= owner[:, None] != owner[None, :]
    if bool(same.any()):
        i, j = (int(v) for v in same.nonzero()[0])
        names = labels.texts
        raise ValueError(
            f"labels {names[i]!r} and {names[j]!r} get the same text embedding from this model's text encoder "
            "(it cannot tell them apart, e.g. an uncased encoder): give classes distinguishable names, or put "
            f"both names in one class ('{names[i]}|{names[j]}')"
        )
    return text, owner


def _max_per_class(scores: Tensor, owner: Tensor, k: int) -> Tensor:
    """``(B, N, H, W)`` per-name scores -> ``(B, K, H, W)``: the maximum over each class's names."""
    if scores.shape[1] == k:  # one name per class: owner is 0..K-1 in order
        return scores
    b, _, h, w = scores.shape
    out = scores.new_full((b, k, h, w), float("-inf"))
    index = owner.to(scores.device)[None, :, None, None].expand_as(scores)
    return out.scatter_reduce(1, index, scores, reduce="amax", include_self=True)


def class_scores(
    name_logits: Tensor, owner: Tensor, k: int, protocol: EvalConfig, model_scale: float | None = None
) -> Tensor:
    """Per-class scores ``(B, K, H, W)`` from the model's per-name logits ``(B, N, H, W)``.

    Args:
        name_logits: the model's logits for every name (``logit_scale * cosine``).
        owner: class index of each name, ``(N,)``.
        k: number of classes.
        protocol: ``logit_scale`` and ``prob_thd`` choose the rule (module docstring).
        model_scale: the model's own logit scale (needed when ``protocol.logit_scale`` re-scales).

    Returns class logits (the maximum over names) when the protocol needs no probabilities, else class
    probabilities: softmax over all names at ``logit_scale`` (default the model's), then the maximum per class.
    """
    if protocol.logit_scale is None and not protocol.uses_probabilities:
        return _max_per_class(name_logits, owner, k)
    logits = name_logits
    if protocol.logit_scale is not None:
        if model_scale is None:
            raise ValueError("re-scaling logits (eval.logit_scale) needs the model's own logit scale")
        logits = name_logits * (protocol.logit_scale / model_scale)
    return _max_per_class(logits.softmax(1), owner, k)


def predict_classes(scores: Tensor, protocol: EvalConfig, background: int | None) -> Tensor:
    """Class index per pixel ``(B, H, W)`` from :func:`class_scores`, with the protocol's background rules.

    ``area_thd`` (SCLIP): per image, the classes other than the background whose share of the predicted
    non-background area is at most ``area_thd`` lose their scores, and the argmax is taken again. ``prob_thd``:
    pixels whose top class probability is below it become ``background``.
    """
    needs_bg = protocol.prob_thd > 0 or protocol.area_thd is not None
    if needs_bg and background is None:
        raise ValueError(
            "eval.prob_thd / eval.area_thd turn pixels into the background class, but this label set has no "
            "background class: set one (LabelSplit background=...) or leave both thresholds off"
        )
    pred = scores.argmax(1)
    if protocol.area_thd is not None:
        k = scores.shape[1]
        onehot = torch.nn.functional.one_hot(pred, k).to(scores.dtype)  # (B, H, W, K)
        area = onehot.sum((1, 2))
        area[:, background] = 0
        keep = area > protocol.area_thd * area.sum(1, keepdim=True)
        keep[:, background] = True
        scores = scores * keep[:, :, None, None].to(scores.dtype)
        pred = scores.argmax(1)
    if protocol.prob_thd > 0:
        pred = torch.where(scores.max(1).values < protocol.prob_thd, background, pred)
    return pred


def shift_seen(name_logits: Tensor, owner: Tensor, seen: Tensor, offset: float) -> Tensor:
    """Seen-bias calibration: ``offset`` subtracted from the logits of every name of a ``seen`` class (a bool
    mask over classes)."""
    return (
        name_logits - (seen.to(name_logits.device)[owner] * offset).to(name_logits.dtype)[None, :, None, None]
    )


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
