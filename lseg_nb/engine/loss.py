"""Training losses: per-pixel softmax cross-entropy over the label set, and the official zero-shot binary variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(logits: Tensor, target: Tensor) -> None:
    if logits.ndim != 4 or target.ndim != 3:
        raise ValueError(
            f"expected logits (B,K,H,W) and target (B,H,W), got {tuple(logits.shape)} / {tuple(target.shape)}"
        )
    if logits.shape[0] != target.shape[0] or logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} disagree in batch or size"
        )


def pixel_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Mean cross-entropy of a per-pixel softmax over the K labels.

    ``logits``: (B, K, H, W) scaled cosine similarities. ``target``: (B, H, W) class indices in ``[0, K)``;
    pixels equal to ``ignore_index`` contribute nothing. Returns a scalar; 0 (with a gradient path) when every
    pixel is ignored, so a crop of void pixels does not produce NaN.
    """
    _check(logits, target)
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    bad = target[valid]
    if bad.min() < 0 or bad.max() >= logits.shape[1]:
        raise ValueError(
            f"target holds class indices outside [0, {logits.shape[1]}) besides ignore_index={ignore_index}: "
            f"{sorted(set(bad.unique().tolist()) - set(range(logits.shape[1])))[:10]}"
        )
    return F.cross_entropy(logits.float(), target, ignore_index=ignore_index)


def binary_zero_shot_loss(
    logits: Tensor,
    target: Tensor,
    class_index: Tensor,
    ignore_index: int = 255,
    ignored_are_others: bool = False,
) -> Tensor:
    """The zero-shot episode loss: each image is scored against ``["others", its episode class]``.

    ``logits``: (B, 2, H, W) for the label pair (0 = "others", 1 = the episode class). ``target``: (B, H, W)
    training class indices (unseen classes and void already ``ignore_index``); ``class_index``: (B,) the episode
    class per image. Pixels of that class become 1, all other labelled pixels 0. ``ignore_index`` pixels stay
    ignored (lseg_nb default), or with ``ignored_are_others`` become "others" (0) too — the official zero-shot
    training, where every pixel that is not the episode's class (other classes, unseen ones, boundaries) is
    "others" and nothing is ignored. Returns the mean pixel cross-entropy.
    """
    _check(logits, target)
    if logits.shape[1] != 2:
        raise ValueError(f"binary zero-shot loss needs 2 labels ('others', class), got {logits.shape[1]}")
    binary = (target == class_index.view(-1, 1, 1)).long()
    if not ignored_are_others:
        binary = torch.where(target == ignore_index, torch.full_like(binary, ignore_index), binary)
    return pixel_cross_entropy(logits, binary, ignore_index)
