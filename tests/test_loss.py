"""Losses against their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from lseg_nb.engine.loss import binary_zero_shot_loss, pixel_cross_entropy


def test_pixel_cross_entropy_matches_formula():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]]])  # (1, 3, 1, 2)
    target = torch.tensor([[[0, 255]]])
    # one valid pixel with logits (2, 0, 1) and class 0: -log softmax
    expected = -(2.0 - math.log(math.exp(2) + math.exp(0) + math.exp(1)))
    assert pixel_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_all_ignored_gives_zero_with_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = pixel_cross_entropy(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_out_of_range_target_is_explained():
    with pytest.raises(ValueError, match="outside"):
        pixel_cross_entropy(torch.randn(1, 3, 2, 2), torch.tensor([[[0, 1], [5, 255]]]))


def test_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="disagree"):
        pixel_cross_entropy(torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))


def test_binary_zero_shot_loss_formula():
    logits = torch.tensor([[[[0.0, 3.0]], [[1.0, 0.0]]]])  # (1, 2, 1, 2): others / class
    target = torch.tensor([[[4, 7]]])  # pixel 0 is the episode class 4, pixel 1 another class -> "others"
    loss = binary_zero_shot_loss(logits, target, torch.tensor([4]))
    p0 = -(1.0 - math.log(math.exp(0) + math.exp(1)))  # label 1
    p1 = -(3.0 - math.log(math.exp(3) + math.exp(0)))  # label 0
    assert loss.item() == pytest.approx((p0 + p1) / 2, rel=1e-6)


def test_mean_over_valid_pixels_equals_torch_mean_reduction():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(2, 4, 5, 6, generator=g), torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, :2] = 255
    ref = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    assert pixel_cross_entropy(logits, target).item() == pytest.approx(ref.item(), rel=1e-6)


def test_out_of_range_targets_are_listed_when_checked():
    target = torch.tensor([[[0, -3], [5, 255]]])
    with pytest.raises(ValueError, match=r"outside \[0, 3\) besides ignore_index=255: \[-3, 5\]"):
        pixel_cross_entropy(torch.randn(1, 3, 2, 2), target, check=True)


def test_nothing_reads_device_values_off_the_cpu():
    """On an accelerator the losses never wait for the device: on 'meta' tensors (shapes, no values) any host read
    of a value would raise, so computing them here proves there is none (the default check is CPU-only)."""
    logits = torch.randn(2, 3, 4, 4, device="meta", requires_grad=True)
    target = torch.zeros(2, 4, 4, dtype=torch.long, device="meta")
    assert pixel_cross_entropy(logits, target).shape == ()
    cls = torch.zeros(2, dtype=torch.long, device="meta")
    assert binary_zero_shot_loss(logits[:, :2], target, cls).shape == ()
    with pytest.raises(Exception):  # noqa: B017 - meta tensors refuse a host read of any kind
        pixel_cross_entropy(logits, target, check=True)
