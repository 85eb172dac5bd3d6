"""PAMR against its formula: hand-computed toy cases and an independent per-pixel loop with the reference
parameters (10 steps are not needed to check the recursion: 3 steps on a 2-image batch)."""

from __future__ import annotations

import math

import pytest
import torch

from lseg_nb.engine.pamr import PAMR_DILATIONS, PAMR_STEPS, pamr, pamr_affinity

OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _naive_pamr(image, scores, steps, dilations):
    """Per-pixel loops: clamped neighbour coordinates, std over (centre + 8 neighbours) per dilation, softmax."""
    b_, c_, h, w = image.shape
    img, m = image.double(), scores.double().clone()

    def nbrs(i, j):
        return [
            (min(max(i + dy * d, 0), h - 1), min(max(j + dx * d, 0), w - 1))
            for d in dilations
            for dy, dx in OFFSETS
        ]

    alpha = torch.zeros(b_, h, w, 8 * len(dilations), dtype=torch.float64)
    for b in range(b_):
        for i in range(h):
            for j in range(w):
                pts = nbrs(i, j)
                kappa = torch.zeros(len(pts), dtype=torch.float64)
                for c in range(c_):
                    values = [img[b, c, i, j].item()] * len(dilations) + [
                        img[b, c, y, x].item() for y, x in pts
                    ]
                    mean = sum(values) / len(values)
                    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                    for p, (y, x) in enumerate(pts):
                        kappa[p] += -abs(img[b, c, i, j].item() - img[b, c, y, x].item()) / (
                            1e-8 + 0.1 * sigma
                        )
                alpha[b, i, j] = torch.softmax(kappa / c_, 0)
    for _ in range(steps):
        new = torch.zeros_like(m)
        for b in range(b_):
            for i in range(h):
                for j in range(w):
                    for p, (y, x) in enumerate(nbrs(i, j)):
                        new[b, :, i, j] += alpha[b, i, j, p] * m[b, :, y, x]
        m = new
    return m, alpha


def test_reference_parameters():
    assert PAMR_STEPS == 10 and PAMR_DILATIONS == (8, 16)


def test_uniform_image_averages_the_clamped_neighbours_by_hand():
    """A constant image gives equal weights 1/8. On a 1x3 row with dilation 1, the 8 neighbours of column j are
    columns j-1, j, j+1, j-1, j+1, j-1, j, j+1 (rows clamp to the row itself), so m'(j) = (3 m(j-1) + 2 m(j) +
    3 m(j+1)) / 8 with clamped columns: [0, 8, 0] -> [3, 2, 3] -> [2.625, 2.75, 2.625]."""
    image = torch.full((1, 3, 1, 3), 0.7)
    scores = torch.tensor([0.0, 8.0, 0.0]).view(1, 1, 1, 3)
    assert torch.allclose(pamr_affinity(image, (1,)), torch.full((1, 8, 1, 3), 1 / 8))
    assert pamr(image, scores, steps=1, dilations=(1,)).flatten().tolist() == pytest.approx([3.0, 2.0, 3.0])
    assert pamr(image, scores, steps=2, dilations=(1,)).flatten().tolist() == pytest.approx(
        [2.625, 2.75, 2.625]
    )


def test_an_edge_blocks_propagation_by_hand():
    """Image 1x2 with channel A = [0, 1] and channel B = [0, 0], dilation 1. For pixel 0 the 8 neighbour columns are
    0,0,1,0,1,0,0,1: channel A's 9 values (with the centre) are six 0s and three 1s, unbiased std
    sqrt((6/9 + 12/9) / 8) = 0.5, so kappa_A = -1 / 0.05 = -20 towards the three column-1 neighbours; channel B is
    flat (kappa 0). Mean over the channels: -10. Weights: 1 / (5 + 3e) for the five column-0 neighbours and
    e / (5 + 3e) for the three column-1 ones, e = exp(-10); pixel 1 mirrors it."""
    image = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]]]])
    scores = torch.tensor([[[[1.0, 0.0]], [[2.0, -4.0]]]])
    e = math.exp(-10)
    same, other = 5 / (5 + 3 * e), 3 * e / (5 + 3 * e)
    out = pamr(image, scores, steps=1, dilations=(1,))
    expected = torch.tensor([[[[same, other]], [[2 * same - 4 * other, -4 * same + 2 * other]]]])
    assert torch.allclose(out.double(), expected.double(), rtol=1e-5, atol=1e-9)
    assert out[0, 0, 0, 1].item() == pytest.approx(3 * e / 5, rel=1e-3)  # ~2.7e-5 leaks across the edge


def test_matches_an_independent_loop_with_the_reference_dilations():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 11, 13, generator=g)
    image[0, :, :, :5] = 0.25  # a flat region: sigma = 0 there for some pixels
    scores = torch.randn(2, 4, 11, 13, generator=g)
    expected, alpha = _naive_pamr(image, scores, steps=3, dilations=PAMR_DILATIONS)
    got_alpha = pamr_affinity(image, PAMR_DILATIONS).permute(0, 2, 3, 1)
    assert torch.allclose(got_alpha.double(), alpha, atol=1e-6)
    got = pamr(image, scores, steps=3)
    assert got.dtype == torch.float32 and got.shape == scores.shape
    assert torch.allclose(got.double(), expected, atol=1e-5)
    assert not torch.allclose(got, scores, atol=1e-2)  # the refinement did something


def test_linear_in_the_scores_and_invariant_to_image_normalisation():
    """Refining cosine logits then scaling = refining scaled logits; a normalised image gives the same weights."""
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 20, 24, generator=g) * 255
    scores = torch.randn(1, 5, 20, 24, generator=g)
    ref = pamr(image, scores, steps=4)
    assert torch.allclose(pamr(image, 40 * scores, steps=4), 40 * ref, rtol=1e-5, atol=1e-4)
    mean = torch.tensor([122.771, 116.746, 104.094]).view(1, 3, 1, 1)
    std = torch.tensor([68.501, 66.632, 70.323]).view(1, 3, 1, 1)
    assert torch.allclose(pamr(image - mean, scores, steps=4), ref, atol=1e-5)
    assert torch.allclose(pamr((image - mean) / std, scores, steps=4), ref, atol=1e-5)
    assert not torch.allclose(pamr(image, scores.softmax(1), steps=4), ref.softmax(1), atol=1e-3)


def test_weights_sum_to_one_and_zero_steps_is_identity():
    g = torch.Generator().manual_seed(2)
    image, scores = torch.rand(2, 3, 9, 7, generator=g), torch.randn(2, 3, 9, 7, generator=g).double()
    alpha = pamr_affinity(image)
    assert alpha.shape == (2, 16, 9, 7) and torch.allclose(alpha.sum(1), torch.ones(2, 9, 7))
    assert (alpha >= 0).all()
    out = pamr(image, scores, steps=0)
    assert out.dtype == torch.float32 and torch.equal(out, scores.float())


def test_bad_inputs_are_named():
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"differ in batch or size: resize the scores"):
        pamr(image, torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"PAMR needs image \(B, C, H, W\)"):
        pamr(image, torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        pamr(image, torch.rand(1, 2, 8, 8), steps=-1)
    for bad in ((), (0, 8), (2.5,)):
        with pytest.raises(ValueError, match="dilations must be a non-empty sequence of integers >= 1"):
            pamr(image, torch.rand(1, 2, 8, 8), dilations=bad)
