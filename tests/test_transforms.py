"""Joint transforms keep image and label aligned; labels stay integer class indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lseg_nb.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    denormalize,
    eval_transform,
    train_transform,
)

PALETTE = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def blocks(h: int = 48, w: int = 64, block: int = 8, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """A label of random 8x8 blocks and an image that is a function of it (colour = PALETTE[label])."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 4, (h // block, w // block)).repeat(block, 0).repeat(block, 1).astype(np.uint8)
    image = (PALETTE[torch.from_numpy(label).long()].numpy() * 255).astype(np.uint8)
    return Image.fromarray(image), label


def interior(label: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood has a single valid label (away from edges, void and image borders)."""
    x = label.float()[None, None]
    hi = F.max_pool2d(x, 2 * radius + 1, 1, radius)
    lo = -F.max_pool2d(-x, 2 * radius + 1, 1, radius)
    ok = (hi == lo)[0, 0] & (label != 255)
    ok[:radius], ok[-radius:], ok[:, :radius], ok[:, -radius:] = False, False, False, False
    return ok


def assert_aligned(image: torch.Tensor, label: torch.Tensor) -> None:
    ok = interior(label)
    assert ok.sum() > 20, "too few interior pixels to check"
    expected = PALETTE[label.clamp(max=3)].permute(2, 0, 1)
    err = (image - expected).abs().amax(0)[ok]
    assert err.max() < 0.05, f"image/label misaligned: max colour error {err.max():.3f} on interior pixels"


@pytest.mark.parametrize("seed", range(6))
def test_train_transform_keeps_alignment(seed):
    image, label = blocks(h=64, w=96, block=16, seed=seed)
    g = torch.Generator().manual_seed(seed)
    t = train_transform(32, mean=(0, 0, 0), std=(1, 1, 1), scale_range=(0.5, 2.0), generator=g)
    x, y = t(image, label)
    assert x.shape == (3, 32, 32) and y.shape == (32, 32) and y.dtype == torch.int64
    assert set(y.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest resize: no blended class ids
    assert_aligned(x, y)


def test_misaligned_pair_is_detected():
    image, label = blocks()
    x, y = Normalize((0, 0, 0), (1, 1, 1))(image, label)
    with pytest.raises(AssertionError, match="misaligned"):
        assert_aligned(x.flip(-1), y)


def test_flip_is_exact_and_joint():
    image, label = blocks()
    x0, y0 = Normalize((0, 0, 0), (1, 1, 1))(image, label)
    x1, y1 = RandomHorizontalFlip(p=1.0)(image, label)
    assert torch.equal(x1, x0.flip(-1)) and torch.equal(y1, y0.flip(-1))
    x2, y2 = RandomHorizontalFlip(p=0.0)(image, label)
    assert torch.equal(x2, x0) and torch.equal(y2, y0)


def test_crop_pads_label_with_ignore_index():
    image, label = blocks(h=8, w=16)
    x, y = RandomCrop((12, 20), ignore_index=250)(image, label)
    assert x.shape == (3, 12, 20) and y.shape == (12, 20)
    # the input fits inside the crop, so it stays at the top-left and the rest is padding
    assert torch.equal(y[:8, :16], torch.from_numpy(label).long())
    assert (y[8:] == 250).all() and (y[:, 16:] == 250).all()
    assert (x[:, 8:] == 0).all() and (x[:, :, 16:] == 0).all()
    assert int((y == 250).sum()) == 12 * 20 - 8 * 16


def test_resize_short_side_and_exact():
    image, label = blocks(h=48, w=64)
    x, y = Resize(24)(image, label)
    assert x.shape == (3, 24, 32) and y.shape == (24, 32)
    # halving 8x8 blocks with nearest sampling gives exact 4x4 blocks
    assert torch.equal(y, torch.from_numpy(label[::2, ::2]).long())
    x, y = Resize((10, 30))(image, np.asarray(label))
    assert x.shape == (3, 10, 30) and y.shape == (10, 30)


def test_random_scale_range_and_base_size():
    image, label = blocks(h=48, w=64)
    for seed in range(5):
        _, y = RandomScale(0.5, 1.5, generator=torch.Generator().manual_seed(seed))(image, label)
        assert 24 <= y.shape[0] <= 72 and abs(y.shape[1] / y.shape[0] - 64 / 48) < 0.05
    # official (PyTorch-Encoding): the LONG side becomes base_size * factor
    _, y = RandomScale(1.0, 1.0, base_size=96)(image, label)
    assert y.shape == (72, 96)
    _, y = RandomScale(0.5, 0.5, base_size=520)(image, label)
    assert max(y.shape) == 260


def test_normalize_values_and_pil_label():
    img = np.full((2, 3, 3), 51, np.uint8)  # 0.2
    x, y = Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 0.25))(
        Image.fromarray(img), Image.fromarray(np.ones((2, 3), np.uint8))
    )
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([0.2, 0.0, -0.4]))
    assert y.dtype == torch.int64 and (y == 1).all()
    with pytest.raises(ValueError, match="3 positive stds"):
        Normalize((0, 0, 0), (1, 0, 1))


def test_randomness_from_torch_rng():
    image, label = blocks()
    t = train_transform(24, (0, 0, 0), (1, 1, 1))
    torch.manual_seed(3)
    a = t(image, label)
    torch.manual_seed(3)
    b = t(image, label)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    outs = {tuple(t(image, label)[1].flatten()[:64].tolist()) for _ in range(5)}
    assert len(outs) > 1


def test_eval_transform_and_compose():
    image, label = blocks(h=48, w=64)
    x, y = eval_transform((0, 0, 0), (1, 1, 1))(image, label)
    assert x.shape == (3, 48, 64) and torch.equal(y, torch.from_numpy(label).long())
    x, y = eval_transform((0, 0, 0), (1, 1, 1), size=24)(image, label)
    assert y.shape == (24, 32)
    assert "Normalize" in repr(Compose([Normalize((0, 0, 0), (1, 1, 1))]))
    with pytest.raises(ValueError, match="same size"):
        Normalize((0, 0, 0), (1, 1, 1))(image, label[:4])


def test_denormalize_inverts_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = (
        torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - torch.tensor(mean)[:, None, None]
    ) / torch.tensor(std)[:, None, None]
    np.testing.assert_array_equal(denormalize(x, mean, std), rgb)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        denormalize(x[0], mean, std)
