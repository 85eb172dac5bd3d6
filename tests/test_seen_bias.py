"""Seen-class bias calibration: offsets change only the all-labels argmax, are fitted on one split and reproduce
a hand-computed calibrated confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.metrics import compute_metrics, confusion_matrices, confusion_matrix
from lseg_nb.engine.postprocess import offset_argmax, seen_unseen_max
from lseg_nb.engine.scoring import OffsetSweepAccumulator, Setting, score_settings
from lseg_nb.engine.seen_bias import default_offsets, fit_seen_offset
from lseg_nb.models import DenseCLIPConfig, create_dense_clip
from lseg_nb.utils.labels import LabelSplit
from tests.test_evaluate import LABELS, UNSEEN, PairDataset, _pairs

SEEN = [0, 2]
PLAIN = EvalConfig(bootstrap=0)


@pytest.fixture
def dataset() -> PairDataset:
    return PairDataset(_pairs([(32, 32), (40, 24), (32, 32)], seed=3))


@pytest.fixture
def data(dataset) -> EvalData:
    return EvalData(dataset, LabelSplit.from_labels(LABELS, UNSEEN))


def _hand_cm(model, ds, offset: float) -> torch.Tensor:
    text = model.encode_text(LABELS)
    cm = torch.zeros(4, 4, dtype=torch.long)
    for img, lab in ds:
        logits = predict_logits(model, img[None], text).clone()
        logits[:, SEEN] -= offset
        cm += confusion_matrix(logits.argmax(1), lab[None], 4)
    return cm


def test_offset_argmax_equals_the_argmax_of_shifted_logits():
    """The one-comparison-per-pixel argmax equals argmax(logits - offset * seen) exactly, ties included."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(-3, 4, (2, 5, 6, 7), generator=g).float()  # many exact ties
    seen = torch.tensor([True, False, True, False, True])
    maxima = seen_unseen_max(logits, seen)
    for offset in (0.0, 0.5, 1.0, 2.0, -1.0, 100.0):
        ref = (logits - offset * seen.float()[None, :, None, None]).argmax(1)
        assert torch.equal(offset_argmax(maxima, offset), ref)


def test_evaluate_applies_the_offset_to_all_labels_only(tiny_model, data):
    plain = run_dense(tiny_model, data, PLAIN, progress=False)
    cal = run_dense(tiny_model, data, PLAIN, progress=False, seen_offset=0.3)
    hand = _hand_cm(tiny_model, data.dataset, 0.3).numpy()
    np.testing.assert_array_equal(cal.settings["calibrated"].confusion, hand)
    assert not np.array_equal(hand, plain.confusion)  # the offset moved some pixels
    assert cal.calibrated.harmonic_iou == pytest.approx(
        compute_metrics(hand, LABELS, SEEN, UNSEEN).harmonic_iou
    )
    # the uncalibrated setting and the unseen-only one (no seen label to shift) are unchanged
    np.testing.assert_array_equal(cal.confusion, plain.confusion)
    np.testing.assert_array_equal(
        cal.settings["unseen_only"].confusion, plain.settings["unseen_only"].confusion
    )
    assert plain.calibrated is None and "calibrated" not in plain.to_dict()["settings"]
    zero = run_dense(tiny_model, data, PLAIN, progress=False, seen_offset=0.0)
    np.testing.assert_array_equal(zero.settings["calibrated"].confusion, plain.confusion)
    d = cal.to_dict()["settings"]["calibrated"]
    assert d["seen_offset"] == 0.3 and d["confusion"] == hand.tolist()
    fixed = EvalData(data.dataset, LabelSplit.from_labels(LABELS))
    with pytest.raises(ValueError, match="needs a zero-shot fold"):
        run_dense(tiny_model, fixed, PLAIN, progress=False, seen_offset=1.0)


def test_fit_picks_the_offset_with_the_best_harmonic_mean(tiny_model, data):
    offsets = np.linspace(0, 1, 11)
    fit = fit_seen_offset(tiny_model, data, PLAIN, offsets, progress=False)
    hand = [compute_metrics(_hand_cm(tiny_model, data.dataset, o), LABELS, SEEN, UNSEEN) for o in offsets]
    h = np.array([m.harmonic_iou for m in hand])
    np.testing.assert_allclose(fit.harmonic, h)
    np.testing.assert_allclose(fit.unseen_miou, [m.unseen_miou for m in hand])
    assert fit.offset == offsets[int(np.argmax(h))]
    assert fit.num_images == 3 and len(fit.to_dict()["curve"]) == 11


def test_default_grid_spans_one_logit_scale_of_the_model(tiny_model):
    grid = default_offsets(tiny_model)
    assert grid[0] == 0 and grid[-1] == pytest.approx(float(tiny_model.head.scale))


def test_default_grid_of_a_dense_clip_model_uses_its_own_scale():
    """DenseCLIP logits are 100 x cosine (OpenAI scale): the grid used to stop at 1/0.07 = 14.3, a seventh of it."""
    model = create_dense_clip(
        DenseCLIPConfig(method="maskclip", name="ViT-B-16", pretrained=None, logit_scale=100.0)
    )
    assert default_offsets(model)[-1] == pytest.approx(100.0)


def test_bad_offsets_are_named(tiny_model, data):
    with pytest.raises(ValueError, match="offsets must be"):
        fit_seen_offset(tiny_model, data, PLAIN, [float("nan")], progress=False)


def test_offset_sweep_counts_equal_one_argmax_per_offset():
    """Every offset's confusion matrix from the one-table sweep equals offset_argmax + confusion_matrices,
    with exact ties (integer logits, offsets landing on the gaps), void pixels and both sides winning."""
    g = torch.Generator().manual_seed(1)
    k = 5
    logits = torch.randint(-3, 4, (2, k, 9, 11), generator=g).float()
    seen = torch.tensor([True, False, True, False, True])
    target = torch.randint(0, k, (2, 9, 11), generator=g)
    target[0, :2] = -1  # not scored
    offsets = [-1.0, 0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.0]
    maxima = seen_unseen_max(logits, seen)
    sweep = OffsetSweepAccumulator(k, offsets, torch.device("cpu"))
    for b in range(2):  # two batches accumulate
        sweep.add(tuple(t[b : b + 1] for t in maxima), target[b : b + 1])
    got = sweep.result()
    for i, offset in enumerate(offsets):
        ref = confusion_matrices(offset_argmax(maxima, offset), target, k, -1).sum(0).numpy()
        np.testing.assert_array_equal(got[i], ref, err_msg=f"offset {offset}")
    assert not np.array_equal(got[0], got[-1])  # the offsets moved pixels


def test_fit_scores_the_sweep_like_separate_settings(tiny_model, data):
    """The fit (swept in one table) reports the same curve as the offsets scored one setting at a time."""
    grid = [0.0, 0.1, 0.2, 0.4, 0.8]
    fit = fit_seen_offset(tiny_model, data, PLAIN, offsets=grid, progress=False)
    labels = data.labels
    every = tuple(range(labels.num_classes))
    for g, o in enumerate(grid):
        one = score_settings(
            tiny_model,
            data.dataset,
            labels,
            [Setting("x", every, labels, o)],
            PLAIN,
            per_image=False,
            progress=False,
        )
        m = compute_metrics(one.confusion["x"], labels.class_names, labels.seen, labels.unseen)
        np.testing.assert_array_equal(
            [fit.seen_miou[g], fit.unseen_miou[g], fit.harmonic[g]],
            [m.seen_miou, m.unseen_miou, m.harmonic_iou],
        )
