"""Joint UMAP: output layout, determinism under a seed, memory cap and planted cluster structure.

One fit is shared through a module-scoped fixture: the first UMAP call compiles numba code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.diagnostics.umap_projection import joint_umap

NAMES = ["sky", "grass", "cow", "sheep"]
SEEN, UNSEEN = [0, 1], [2, 3]
KW = dict(n_neighbors=10, n_epochs=50, seed=0)


def _planted(n_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    text = F.normalize(torch.randn(4, 16, generator=g), dim=-1)
    lab = torch.arange(4).repeat_interleave(n_per_class)
    pix = F.normalize(text[lab] + 0.05 * torch.randn(len(lab), 16, generator=g), dim=-1)
    return pix, lab, text


@pytest.fixture(scope="module")
def fitted():
    pix, lab, text = _planted(40)
    lab[:5] = 255
    return (pix, lab, text), joint_umap(pix, lab, text, NAMES, SEEN, UNSEEN, **KW)


def test_layout_and_flags(fitted):
    _, res = fitted
    n = res.n_sampled_pixels
    assert res.n_input_pixels == 155 and n == 155
    assert res.coords.shape == (n + 4, 2) and res.coords.dtype == np.float32 and np.isfinite(res.coords).all()
    assert res.is_text.tolist() == [False] * n + [True] * 4
    assert res.labels[res.is_text].tolist() == [0, 1, 2, 3]
    assert np.array_equal(res.is_unseen, np.isin(res.labels, UNSEEN))
    assert res.text_coords.shape == (4, 2) and res.pixel_coords.shape == (n, 2)


def test_text_points_sit_in_their_own_pixel_cluster(fitted):
    _, res = fitted
    pix_lab = res.labels[~res.is_text]
    centroids = np.stack([res.pixel_coords[pix_lab == c].mean(0) for c in range(4)])
    for c, t in enumerate(res.text_coords):
        assert np.linalg.norm(centroids - t, axis=1).argmin() == c


def test_same_seed_same_coordinates(fitted):
    (pix, lab, text), res = fitted
    again = joint_umap(pix, lab, text, NAMES, SEEN, UNSEEN, **KW)
    assert np.array_equal(res.coords, again.coords)


def test_memory_cap_on_100k_pixels_streamed():
    pix, lab, text = _planted(25_000, seed=1)
    batches = [(pix[s : s + 10_000], lab[s : s + 10_000]) for s in range(0, 100_000, 10_000)]
    res = joint_umap(iter(batches), None, text, NAMES, SEEN, UNSEEN, max_pixels=120, **KW)
    assert res.n_input_pixels == 100_000
    assert res.n_sampled_pixels == 120 and len(res.coords) == 124
    assert np.bincount(res.labels[~res.is_text]).tolist() == [30, 30, 30, 30]  # stratified


def test_errors():
    pix, lab, text = _planted(3)
    with pytest.raises(ValueError, match="out of range"):
        joint_umap(pix, lab, text, NAMES, SEEN, [9])
    with pytest.raises(ValueError, match="labels are required"):
        joint_umap(pix, None, text, NAMES, SEEN, UNSEEN)
