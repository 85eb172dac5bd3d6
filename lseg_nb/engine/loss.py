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


def pixel_cross_entropy(
    logits: Tensor, target: Tensor, ignore_index: int = 255, check: bool | None = None
) -> Tensor:
    """Mean cross-entropy of a per-pixel softmax over the K labels.

    ``logits``: (B, K, H, W) scaled cosine similarities. ``target``: (B, H, W) class indices in ``[0, K)``;
    pixels equal to ``ignore_index`` contribute nothing. Returns a scalar; 0 (with a gradient path) when every
    pixel is ignored, so a crop of void pixels does not produce NaN.

    ``check``: raise a ``ValueError`` listing target values outside ``[0, K)`` other than ``ignore_index``.
    ``None`` checks CPU targets only: there it is one cheap pass, while on a GPU it would make every training step
    wait for the device (the training data already maps labels through a lookup table, so its targets are valid
    by construction); pass ``check=True`` to debug GPU targets. Nothing else here waits for the device.
    """
    _check(logits, target)
    k = logits.shape[1]
    if check or (check is None and target.device.type == "cpu"):
        bad = (target != ignore_index) & ((target < 0) | (target >= k))
        if bad.any():
            raise ValueError(
                f"target holds class indices outside [0, {k}) besides ignore_index={ignore_index}: "
                f"{sorted(set(target[bad].tolist()))[:10]}"
            )
    # sum / count instead of reduction="mean": the same value, but 0 rather than NaN when nothing is valid
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)


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
    return pixel_cross_entropy(logits, binary, ignore_index, check=False)  # 0/1/ignore by construction
