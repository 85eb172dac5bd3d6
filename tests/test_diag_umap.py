"""Joint UMAP: output layout, determinism under a seed, memory cap and planted cluster structure.

One fit is shared through a module-scoped fixture: the first UMAP call compiles numba code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.diagnostics.umap_projection import centre_modalities, centroid_text_ranks, joint_umap

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


def _gapped(
    n_per_class: int, k: int = 4, gap: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels ``gap*u + v_c`` and texts ``w + v_c`` with ``u``, ``w``, ``v_c`` orthonormal: a planted modality gap.

    Every pixel is nearer (cosine 0.9) to every other pixel than to any text (at most 1/sqrt(20) = 0.22), and each modality
    minus its own mean is exactly ``v_c - mean(v)``: the centred texts coincide with their classes' pixels.
    """
    basis = torch.eye(k + 2)
    u, w, v = basis[0], basis[1], basis[2:]
    lab = torch.arange(k).repeat_interleave(n_per_class)
    return gap * u + v[lab], lab, w + v


def test_centre_modalities_removes_a_planted_gap():
    pix, lab, text = _gapped(3)
    raw = F.normalize(pix, dim=-1) @ F.normalize(text, dim=-1).T
    assert abs(float(raw.max()) - 20**-0.5) < 1e-6  # before: no pixel is near any text
    pix_c, text_c = centre_modalities(pix, text)
    assert torch.allclose(pix_c.norm(dim=-1), torch.ones(len(pix)), atol=1e-6)
    assert torch.allclose(pix_c.mean(0), text_c.mean(0), atol=1e-6)
    assert torch.allclose(pix_c, text_c[lab], atol=1e-6)  # after: each pixel is on its own text


def test_centre_modalities_errors():
    with pytest.raises(ValueError, match="at least 2 class texts"):
        centre_modalities(torch.randn(5, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"\(P, D\) and \(K, D\)"):
        centre_modalities(torch.randn(5, 3), torch.randn(2, 4))


def test_centroid_text_ranks_known_answer():
    e = torch.eye(4)  # the four texts are the axes
    pix = torch.stack([e[0], e[0] + 0.1 * e[3], 0.3 * e[1] + e[2], 0.3 * e[1] + e[2], e[0] + 0.9 * e[1]])
    lab = torch.tensor([0, 0, 1, 1, 3])
    names = ["sky", "grass", "cow", "sheep"]
    rows = centroid_text_ranks(pix, lab, e, names, unseen=[1, 3])
    got = [(r.name, r.unseen, r.n_pixels, r.rank, r.nearest) for r in rows]
    assert got[:3] == [
        ("sky", False, 2, 1.0, "sky"),  # centroid on its own text
        ("grass", True, 2, 2.0, "cow"),  # centroid nearer to cow's text than to its own
        ("cow", False, 0, got[2][3], None),  # no pixels
    ]
    assert np.isnan(got[2][3]) and np.isnan(rows[2].rank_centred)
    # sky and grass are nearer than its own text; cow ties with it (cosine 0) and the tie counts in its favour
    assert got[3] == ("sheep", True, 1, 3.0, "sky")


@pytest.fixture(scope="module")
def gapped_fit():
    pix, lab, text = _gapped(40)
    pix = F.normalize(pix + 0.05 * torch.randn(pix.shape, generator=torch.Generator().manual_seed(0)), dim=-1)
    return {c: joint_umap(pix, lab, text, NAMES, SEEN, UNSEEN, centre=c, **KW) for c in (True, False)}


def test_centred_umap_puts_each_text_in_its_own_cluster_despite_the_gap(gapped_fit):
    res = gapped_fit[True]
    assert res.centred
    centroids = res.pixel_centroids()
    for c, t in enumerate(res.text_coords):
        assert np.linalg.norm(centroids - t, axis=1).argmin() == c
    assert [r.rank for r in res.ranks] == [1.0] * 4 and [r.rank_centred for r in res.ranks] == [1.0] * 4


def test_raw_umap_shows_the_gap(gapped_fit):
    # the failure the centring fixes: raw texts sit together, apart from every pixel cluster
    res = gapped_fit[False]
    assert not res.centred
    text_spread = np.linalg.norm(res.text_coords - res.text_coords.mean(0), axis=1).max()
    nearest_pixel = np.linalg.norm(res.pixel_coords[:, None] - res.text_coords[None], axis=-1).min()
    assert text_spread < nearest_pixel
