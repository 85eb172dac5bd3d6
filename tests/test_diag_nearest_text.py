"""nearest_text_map against brute force, with and without upsampling and vocabulary chunking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lseg_nb.diagnostics.nearest_text import nearest_text_map, vocabulary_shares

VOCAB = [f"w{i}" for i in range(10)]


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(2, 8, 5, 6, generator=g), dim=1)
    text = F.normalize(torch.randn(10, 8, generator=g), dim=-1)
    return emb, text


def test_matches_brute_force_at_embedding_resolution():
    emb, text = _inputs()
    idx, sims = nearest_text_map(emb, text, VOCAB, chunk_size=3)
    full = torch.einsum("bdhw,vd->bvhw", emb, text)
    assert idx.dtype == torch.long and idx.shape == (2, 5, 6)
    assert torch.equal(idx, full.argmax(1))
    assert torch.allclose(sims, full.amax(1), atol=1e-6)


def test_matches_brute_force_after_bilinear_upsampling():
    emb, text = _inputs(1)
    idx, sims = nearest_text_map(emb, text, VOCAB, out_size=(17, 23), chunk_size=4)
    full = F.interpolate(
        torch.einsum("bdhw,vd->bvhw", emb, text), size=(17, 23), mode="bilinear", align_corners=True
    )
    assert idx.shape == (2, 17, 23)
    assert torch.equal(idx, full.argmax(1))
    assert torch.allclose(sims, full.amax(1), atol=1e-6)


def test_planted_pixels_pick_their_text_and_single_image_drops_batch():
    _, text = _inputs()
    want = torch.tensor([[3, 7], [9, 0]])
    emb = text[want].permute(2, 0, 1) * 5.0  # unnormalised on purpose: cosine must not care
    idx, sims = nearest_text_map(emb, text, VOCAB)
    assert idx.shape == (2, 2) and torch.equal(idx, want)
    assert torch.allclose(sims, torch.ones(2, 2), atol=1e-5)


def test_vocabulary_shares_and_errors():
    idx = torch.tensor([[1, 1, 2], [1, 0, 2]])
    assert vocabulary_shares(idx, ["a", "b", "c", "d"]) == [("b", 0.5), ("c", 2 / 6), ("a", 1 / 6)]
    assert vocabulary_shares(idx, ["a", "b", "c"], top=1) == [("b", 0.5)]
    emb, text = _inputs()
    with pytest.raises(ValueError, match="10 rows but 3 names"):
        nearest_text_map(emb, text, VOCAB[:3])
    with pytest.raises(ValueError, match=r"must be \(V, 8\)"):
        nearest_text_map(emb, text[:, :4], VOCAB)
    with pytest.raises(ValueError, match=r"pixel_emb must be \(B, D, h, w\)"):
        nearest_text_map(emb[0, 0], text, VOCAB)
