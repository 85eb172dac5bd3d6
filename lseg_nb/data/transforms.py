"""Joint image/label transforms for segmentation.

Every transform is a small callable ``t(image, label) -> (image, label)``. Inputs may be a PIL image / numpy
array / tensor; outputs are always tensors: image ``float32 (3, H, W)`` (in ``[0, 1]`` until :class:`Normalize`),
label ``int64 (H, W)``. Labels are resized with nearest-neighbour only, so class indices and ``ignore_index``
survive. Randomness comes from an optional ``torch.Generator`` or else the global torch RNG, which PyTorch's
``DataLoader`` seeds per worker (python ``random`` is never used).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Pair = tuple[torch.Tensor, torch.Tensor]


def to_tensor_pair(image: Any, label: Any) -> Pair:
    """Convert (PIL/np/tensor image, PIL/np/tensor label) to (float (3,H,W) in [0,1], long (H,W)).

    uint8 images are divided by 255; float images/tensors are taken as already in [0, 1].
    """
    if not isinstance(image, torch.Tensor):
        arr = np.array(image.convert("RGB") if hasattr(image, "convert") else image)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        t = torch.from_numpy(arr).permute(2, 0, 1)
        image = t.float() / 255.0 if arr.dtype == np.uint8 else t.float()
    if not isinstance(label, torch.Tensor):
        label = torch.from_numpy(np.array(label, dtype=np.int64))
    label = label.long()
    if image.ndim != 3 or label.ndim != 2 or image.shape[1:] != label.shape:
        raise ValueError(
            f"image {tuple(image.shape)} and label {tuple(label.shape)} must be (C,H,W) and (H,W) of the same size"
        )
    return image, label


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def _resize_pair(image: torch.Tensor, label: torch.Tensor, h: int, w: int) -> Pair:
    if (h, w) == tuple(label.shape):
        return image, label
    # antialias keeps downscaled textures (stripes, dots) from aliasing into other patterns
    img = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    lab = F.interpolate(label[None, None].float(), size=(h, w), mode="nearest-exact")[0, 0].long()
    return img, lab


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class Resize:
    """Resize: an ``int`` sets the shorter side (aspect kept), an ``(H, W)`` pair sets the exact size."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, image: Any, label: Any) -> Pair:
        image, label = to_tensor_pair(image, label)
        h, w = label.shape
        if isinstance(self.size, int):
            s = self.size / min(h, w)
            return _resize_pair(image, label, max(1, round(h * s)), max(1, round(w * s)))
        return _resize_pair(image, label, *_hw(self.size))


class RandomScale:
    """Rescale by a factor drawn uniformly from ``[min_scale, max_scale]``.

    With ``base_size`` the LONG side becomes ``base_size * factor`` (the official recipe: PyTorch-Encoding's
    ``_sync_transform`` with base size 520 and factors 0.5-2.0), otherwise the current size is multiplied by it.
    """

    def __init__(
        self,
        min_scale: float = 0.5,
        max_scale: float = 2.0,
        base_size: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale needs 0 < min_scale <= max_scale, got ({min_scale}, {max_scale})")
        self.min_scale, self.max_scale, self.base_size, self.generator = (
            min_scale,
            max_scale,
            base_size,
            generator,
        )

    def __call__(self, image: Any, label: Any) -> Pair:
        image, label = to_tensor_pair(image, label)
        h, w = label.shape
        s = _uniform(self.min_scale, self.max_scale, self.generator)
        if self.base_size is not None:
            s = self.base_size * s / max(h, w)
        return _resize_pair(image, label, max(1, round(h * s)), max(1, round(w * s)))


class RandomCrop:
    """Random crop to ``size``; smaller inputs are padded (image with 0, label with ``ignore_index``)."""

    def __init__(
        self, size: int | Sequence[int], ignore_index: int = 255, generator: torch.Generator | None = None
    ) -> None:
        self.size, self.ignore_index, self.generator = _hw(size), ignore_index, generator

    def __call__(self, image: Any, label: Any) -> Pair:
        image, label = to_tensor_pair(image, label)
        ch, cw = self.size
        h, w = label.shape
        ph, pw = max(0, ch - h), max(0, cw - w)
        if ph or pw:
            # pad bottom/right so padded pixels never shift the labelled content
            image = F.pad(image, (0, pw, 0, ph), value=0.0)
            label = F.pad(label, (0, pw, 0, ph), value=self.ignore_index)
            h, w = label.shape
        top = int(torch.randint(0, h - ch + 1, (), generator=self.generator))
        left = int(torch.randint(0, w - cw + 1, (), generator=self.generator))
        return image[:, top : top + ch, left : left + cw], label[top : top + ch, left : left + cw]


class RandomHorizontalFlip:
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.p, self.generator = p, generator

    def __call__(self, image: Any, label: Any) -> Pair:
        image, label = to_tensor_pair(image, label)
        if torch.rand((), generator=self.generator).item() < self.p:
            return image.flip(-1), label.flip(-1)
        return image, label


class ToTensor:
    """Convert to tensors only: image float in [0, 1], label long."""

    def __call__(self, image: Any, label: Any) -> Pair:
        return to_tensor_pair(image, label)


def normalize_image(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a float image ``(..., 3, H, W)`` in [0, 1]."""
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image - m) / s


class Normalize:
    """Convert to tensors (ToTensor included) and standardise the image: ``(x - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"Normalize needs 3 means and 3 positive stds, got mean={mean}, std={std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Any, label: Any) -> Pair:
        image, label = to_tensor_pair(image, label)
        return normalize_image(image, self.mean.flatten(), self.std.flatten()), label


def denormalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised ``(3, H, W)`` image -> displayable RGB uint8 ``(H, W, 3)``."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a normalised (3, H, W) image, got {tuple(image.shape)}")
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    img = (image.detach().float().cpu() * s + m).clamp(0, 1) * 255
    return img.round().byte().permute(1, 2, 0).numpy()


class Compose:
    """Apply joint transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Any, Any], Pair]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, label: Any) -> Pair:
        for t in self.transforms:
            image, label = t(image, label)
        return to_tensor_pair(image, label)

    def __repr__(self) -> str:
        return f"Compose({[type(t).__name__ for t in self.transforms]})"


def train_transform(
    crop_size: int | Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    scale_range: tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    base_size: int | None = None,
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
    square_resize: bool = False,
) -> Compose:
    """Training augmentation: random scale -> random crop (padded with ``ignore_index``) -> flip -> normalise.

    ``square_resize`` first resizes to ``crop_size x crop_size`` (aspect not kept), as the official zero-shot
    loaders do (with ``scale_range=(1, 1)`` and ``flip=False`` nothing else changes the image)."""
    ts: list[Callable[[Any, Any], Pair]] = [Resize(_hw(crop_size))] if square_resize else []
    ts += [
        RandomScale(*scale_range, base_size=base_size, generator=generator),
        RandomCrop(crop_size, ignore_index=ignore_index, generator=generator),
    ]
    if flip:
        ts.append(RandomHorizontalFlip(0.5, generator=generator))
    ts.append(Normalize(mean, std))
    return Compose(ts)


def eval_transform(
    mean: Sequence[float], std: Sequence[float], size: int | Sequence[int] | None = None
) -> Compose:
    """Evaluation transform: optional :class:`Resize` (shorter side or exact size) then normalise."""
    ts: list[Callable[[Any, Any], Pair]] = [] if size is None else [Resize(size)]
    return Compose([*ts, Normalize(mean, std)])
