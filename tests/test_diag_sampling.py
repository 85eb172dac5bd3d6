"""Stratified capped streaming sampler: known quotas, exact chunked == one-shot, bounded state, no bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lseg_nb.diagnostics.sampling import PixelSampler, flatten_pixels, sample_pixels, water_level


def _flat(counts: list[int], dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels whose column 0 is the label and column 1 a unique id, so samples can be traced back."""
    lab = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    lab = lab[torch.randperm(len(lab), generator=torch.Generator().manual_seed(0))]
    emb = torch.zeros(len(lab), dim)
    emb[:, 0] = lab.float()
    emb[:, 1] = torch.arange(len(lab)).float()
    return emb, lab


def test_water_level_known_answer():
    # 5 + 2q <= 80 -> q = 37; per_class caps it first when smaller.
    assert water_level({0: 5, 1: 100, 2: 1000}, per_class=50, max_total=80) == 37
    assert water_level({0: 5, 1: 100, 2: 1000}, per_class=20, max_total=80) == 20


def test_quotas_rare_class_kept_whole_and_rows_are_real():
    emb, lab = _flat([5, 100, 1000])
    e, y = sample_pixels(emb, lab, per_class=50, max_total=80, seed=0)
    assert np.bincount(y.numpy()).tolist() == [5, 37, 37]
    assert e.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(e[:, 0].long(), y)  # each sampled row carries its own label
    ids = e[:, 1].long()
    assert len(set(ids.tolist())) == len(ids)  # without replacement
    assert torch.equal(lab[ids], y)


def test_ignore_index_skipped():
    emb, lab = _flat([30, 30, 30])
    lab[lab == 1] = 255
    _, y = sample_pixels(emb, lab, per_class=100, max_total=1000)
    assert sorted(set(y.tolist())) == [0, 2]
    assert len(y) == 60


def test_deterministic_under_seed():
    emb, lab = _flat([200, 300])
    a = sample_pixels(emb, lab, per_class=50, max_total=100, seed=3)
    b = sample_pixels(emb, lab, per_class=50, max_total=100, seed=3)
    c = sample_pixels(emb, lab, per_class=50, max_total=100, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_streaming_equals_one_shot_and_state_is_bounded():
    emb, lab = _flat([7, 400, 900, 60])
    one = sample_pixels(emb, lab, per_class=100, max_total=150, seed=1)
    sampler = PixelSampler(per_class=100, max_total=150, seed=1)
    for start in range(0, len(lab), 97):
        sampler.update(emb[start : start + 97], lab[start : start + 97])
        assert sampler.n_kept <= 150
    chunked = sampler.result()
    assert torch.equal(one[0], chunked[0]) and torch.equal(one[1], chunked[1])
    assert sampler.n_valid == len(lab)
    batches = [(emb[s : s + 500], lab[s : s + 500]) for s in range(0, len(lab), 500)]
    assert torch.equal(sample_pixels(iter(batches), per_class=100, max_total=150, seed=1)[0], one[0])


def test_streaming_not_biased_towards_early_batches():
    emb, lab = _flat([1000])
    first_half = []
    for seed in range(40):
        sampler = PixelSampler(per_class=100, max_total=100, seed=seed)
        for start in range(0, 1000, 250):
            sampler.update(emb[start : start + 250], lab[start : start + 250])
        first_half.append((sampler.result()[0][:, 1] < 500).float().mean().item())
    assert abs(np.mean(first_half) - 0.5) < 0.03


def test_map_input_labels_nearest_downsampled():
    # Labels at 2x the embedding resolution, constant on 2x2 blocks, so nearest resizing is exact.
    g = torch.Generator().manual_seed(0)
    small = torch.randint(0, 3, (2, 4, 4), generator=g)
    labels = small.repeat_interleave(2, 1).repeat_interleave(2, 2)
    emb = torch.zeros(2, 5, 4, 4)
    emb[:, 0] = small.float()
    flat_e, flat_y = flatten_pixels(emb, labels)
    assert flat_e.shape == (32, 5) and torch.equal(flat_e[:, 0].long(), flat_y)
    e, y = sample_pixels(emb, labels, per_class=100, max_total=100)
    assert torch.equal(e[:, 0].long(), y) and len(y) == 32


def test_errors_are_specific():
    emb, lab = _flat([10])
    with pytest.raises(ValueError, match="labels are required"):
        sample_pixels(emb)
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        sample_pixels(emb, lab[:5])
    with pytest.raises(ValueError, match="no pixels were sampled"):
        sample_pixels(emb, torch.full_like(lab, 255))
    with pytest.raises(ValueError, match="per_class and max_total"):
        PixelSampler(0, 10)
