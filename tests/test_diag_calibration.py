"""Calibration metrics against hand-computed and planted answers; temperature scaling recovers a planted T."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lseg_nb.diagnostics.calibration import (
    CalibrationAccumulator,
    confidence_map,
    fit_temperature,
    temperature_scaling,
)


def _synthetic(n: int, conf_fn, acc_fn, k: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 is predicted with confidence c; the target is 0 with probability acc_fn(c), else another class."""
    rng = np.random.default_rng(seed)
    c = conf_fn(rng, n)
    probs = np.repeat(((1 - c) / (k - 1))[:, None], k, axis=1)
    probs[:, 0] = c
    correct = rng.random(n) < acc_fn(c)
    target = np.where(correct, 0, rng.integers(1, k, n))
    return torch.from_numpy(probs).float(), torch.from_numpy(target)


def _report(probs, target, **kw):
    acc = CalibrationAccumulator(**kw)
    acc.update(probs, target)
    return acc


def test_hand_computed_four_pixels():
    probs = torch.tensor([[0.95, 0.05], [0.85, 0.15], [0.35, 0.65], [0.55, 0.45]])
    target = torch.tensor([0, 1, 1, 0])  # confidences .95 .85 .65 .55, correct 1 0 1 1
    r = _report(probs, target, n_bins=10).compute()
    assert r.count == 4 and r.accuracy == 0.75 and r.mean_confidence == pytest.approx(0.75)
    assert r.ece == pytest.approx((0.05 + 0.85 + 0.35 + 0.45) / 4)
    assert r.mce == pytest.approx(0.85)
    assert r.nll == pytest.approx(
        -(math.log(0.95) + math.log(0.15) + math.log(0.65) + math.log(0.55)) / 4, rel=1e-6
    )
    assert r.brier == pytest.approx((0.005 + 1.445 + 0.245 + 0.405) / 4, rel=1e-6)
    assert r.bin_count.tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 1, 1]
    # Equal mass, 2 bins: {.55, .65} acc 1 conf .6 and {.85, .95} acc .5 conf .9 -> gaps .4 and .4.
    m = _report(probs, target, n_bins=2).compute()
    assert m.mass_bin_count.tolist() == [2, 2]
    assert m.ece_equal_mass == pytest.approx(0.4)
    assert m.mass_bin_edges[0] == 0 and 0.65 < m.mass_bin_edges[1] <= 0.85 and m.mass_bin_edges[2] == 1


def test_perfectly_calibrated_has_near_zero_ece():
    probs, target = _synthetic(100_000, lambda rng, n: rng.uniform(0.3, 1.0, n), lambda c: c)
    r = _report(probs, target).compute()
    assert r.ece < 0.02 and r.ece_equal_mass < 0.02
    assert abs(r.accuracy - r.mean_confidence) < 0.01


def test_over_confident_ece_is_the_gap():
    probs, target = _synthetic(50_000, lambda rng, n: np.full(n, 0.9), lambda c: 0.6)
    r = _report(probs, target).compute()
    assert r.mean_confidence == pytest.approx(0.9, abs=1e-5)
    assert r.accuracy == pytest.approx(0.6, abs=0.01)
    assert r.ece == pytest.approx(0.3, abs=0.01) and r.ece_equal_mass == pytest.approx(0.3, abs=0.01)
    assert r.mce == pytest.approx(0.3, abs=0.01)


def test_streaming_equals_one_shot_and_4d_equals_flat():
    probs, target = _synthetic(3000, lambda rng, n: rng.uniform(0.3, 1.0, n), lambda c: c**2)
    target[::7] = 255
    one = _report(probs, target).compute()
    acc = CalibrationAccumulator()
    for s in range(0, 3000, 700):
        acc.update(probs[s : s + 700], target[s : s + 700])
    chunked = acc.compute()
    maps = probs.reshape(3, 10, 100, 4).permute(0, 3, 1, 2)  # (B, K, H, W)
    four_d = _report(maps, target.reshape(3, 10, 100)).compute()
    for other in (chunked, four_d):
        assert other.count == one.count == 3000 - len(range(0, 3000, 7))
        for f in ("ece", "ece_equal_mass", "mce", "nll", "brier", "accuracy", "mean_confidence"):
            assert getattr(other, f) == pytest.approx(getattr(one, f), rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(other.mass_bin_count, one.mass_bin_count)


def test_groups_split_by_ground_truth_class_and_mask():
    seen_p, seen_t = _synthetic(20_000, lambda rng, n: rng.uniform(0.3, 1.0, n), lambda c: c, k=4, seed=1)
    over_p, over_t = _synthetic(20_000, lambda rng, n: np.full(n, 0.9), lambda c: 0.6, k=4, seed=2)
    # Relabel the over-confident set into classes 4..7 so ground truth alone separates the groups.
    probs = torch.zeros(40_000, 8)
    probs[:20_000, :4], probs[20_000:, 4:] = seen_p, over_p
    target = torch.cat([seen_t, over_t + 4])
    acc = CalibrationAccumulator(class_groups={"seen": [0, 1, 2, 3], "unseen": [4, 5, 6, 7]})
    acc.update(probs, target)
    reps = acc.reports()
    assert reps["seen"].count == reps["unseen"].count == 20_000 and reps["all"].count == 40_000
    assert reps["seen"].ece < 0.03 and reps["unseen"].ece == pytest.approx(0.3, abs=0.015)
    masked = CalibrationAccumulator()
    masked.update(probs, target, mask=torch.arange(40_000) < 20_000)
    assert masked.compute().ece == pytest.approx(reps["seen"].ece)


def test_update_rejects_logits_and_bad_labels():
    acc = CalibrationAccumulator()
    with pytest.raises(ValueError, match="update_logits"):
        acc.update(torch.randn(5, 3) * 4, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target labels \[9\]"):
        acc.update(torch.full((2, 3), 1 / 3), torch.tensor([0, 9]))
    with pytest.raises(ValueError, match=r"target must be \(B, H, W\)"):
        acc.update(torch.full((1, 3, 2, 2), 1 / 3), torch.zeros(1, 3, 3, dtype=torch.long))


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_fit_temperature_recovers_planted_temperature(t_true):
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20_000, 10, generator=g)
    target = torch.multinomial(torch.softmax(logits / t_true, dim=1), 1, generator=g)[:, 0]
    target[:100] = 255
    assert fit_temperature(logits, target) == pytest.approx(t_true, rel=0.05)


def test_temperature_scaling_reduces_ece_on_held_out_split():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(20_000, 6, generator=g)
    target = torch.multinomial(torch.softmax(logits / 2.0, dim=1), 1, generator=g)[:, 0]
    res = temperature_scaling(
        logits[:10_000],
        target[:10_000],
        logits[10_000:],
        target[10_000:],
        class_groups={"seen": [0, 1, 2], "unseen": [3, 4, 5]},
    )
    assert res.temperature == pytest.approx(2.0, rel=0.08)
    for g_name in ("all", "seen", "unseen"):
        assert res.after[g_name].ece < res.before[g_name].ece
        assert res.after[g_name].nll < res.before[g_name].nll
        assert res.after[g_name].accuracy == res.before[g_name].accuracy  # T never changes the argmax
    assert len(res.to_rows()) == 6


def test_confidence_map_is_max_softmax():
    logits = torch.tensor([[[[2.0]], [[0.0]]]])  # (1, 2, 1, 1)
    assert confidence_map(logits).item() == pytest.approx(1 / (1 + math.exp(-2)))
    assert confidence_map(logits, temperature=2.0).item() == pytest.approx(1 / (1 + math.exp(-1)))
    assert confidence_map(torch.randn(3, 5, 4)).shape == (5, 4)
    assert confidence_map(torch.randn(2, 3, 5, 4)).shape == (2, 5, 4)


def test_fit_temperature_warns_at_search_bound():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2000, 5, generator=g)
    target = torch.randint(0, 5, (2000,), generator=g)  # labels independent of logits: best T is infinite
    with pytest.warns(UserWarning, match="at the search bound"):
        assert fit_temperature(logits, target, bounds=(0.1, 10.0)) == pytest.approx(10.0, rel=0.01)
