"""Seen-class bias calibration: offsets change only the all-labels argmax, are fitted on one split and reproduce
a hand-computed calibrated confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lseg_nb.engine.evaluate import evaluate
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.metrics import compute_metrics, confusion_matrix
from lseg_nb.engine.seen_bias import default_offsets, fit_seen_offset, seen_offset_confusions
from tests.test_evaluate import LABELS, UNSEEN, PairDataset, _pairs

SEEN = [0, 2]


@pytest.fixture
def dataset() -> PairDataset:
    return PairDataset(_pairs([(32, 32), (40, 24), (32, 32)], seed=3))


def _hand_cm(model, ds, offset: float) -> torch.Tensor:
    text = model.encode_text(LABELS)
    cm = torch.zeros(4, 4, dtype=torch.long)
    for img, lab in ds:
        logits = predict_logits(model, img[None], text).clone()
        logits[:, SEEN] -= offset
        cm += confusion_matrix(logits.argmax(1), lab[None], 4)
    return cm


def test_offset_confusions_match_hand_calibration(tiny_model, dataset):
    offsets = [0.0, 0.05, 0.3, 50.0]
    cms = seen_offset_confusions(tiny_model, dataset, LABELS, SEEN, offsets, progress=False)
    assert cms.shape == (4, 4, 4)
    for g, off in enumerate(offsets):
        np.testing.assert_array_equal(cms[g].numpy(), _hand_cm(tiny_model, dataset, off).numpy())
    # a huge offset leaves no seen prediction; offset 0 is the uncalibrated model
    assert cms[3][:, SEEN].sum() == 0
    np.testing.assert_array_equal(
        cms[0].numpy(), evaluate(tiny_model, dataset, LABELS, unseen=UNSEEN, progress=False).confusion
    )


def test_evaluate_applies_the_offset_to_all_labels_only(tiny_model, dataset):
    plain = evaluate(tiny_model, dataset, LABELS, unseen=UNSEEN, progress=False)
    cal = evaluate(tiny_model, dataset, LABELS, unseen=UNSEEN, progress=False, seen_offset=0.3)
    hand = _hand_cm(tiny_model, dataset, 0.3).numpy()
    np.testing.assert_array_equal(cal.calibrated_confusion, hand)
    assert not np.array_equal(hand, plain.confusion)  # the offset moved some pixels
    assert cal.calibrated.harmonic_iou == pytest.approx(
        compute_metrics(hand, LABELS, SEEN, UNSEEN).harmonic_iou
    )
    # the uncalibrated setting and the unseen-only one (no seen label to shift) are unchanged
    np.testing.assert_array_equal(cal.confusion, plain.confusion)
    np.testing.assert_array_equal(cal.unseen_confusion, plain.unseen_confusion)
    assert plain.calibrated is None and plain.to_dict()["calibrated"] is None and plain.seen_offset is None
    zero = evaluate(tiny_model, dataset, LABELS, unseen=UNSEEN, progress=False, seen_offset=0.0)
    np.testing.assert_array_equal(zero.calibrated_confusion, plain.confusion)  # offset 0 = uncalibrated
    d = cal.to_dict()
    assert d["seen_offset"] == 0.3 and d["calibrated_confusion"] == hand.tolist()
    with pytest.raises(ValueError, match="pass unseen"):
        evaluate(tiny_model, dataset, LABELS, progress=False, seen_offset=1.0)


def test_fit_picks_the_offset_with_the_best_harmonic_mean(tiny_model, dataset):
    offsets = np.linspace(0, 1, 11)
    fit = fit_seen_offset(tiny_model, dataset, LABELS, UNSEEN, offsets, progress=False)
    hand = [compute_metrics(_hand_cm(tiny_model, dataset, o), LABELS, SEEN, UNSEEN) for o in offsets]
    h = np.array([m.harmonic_iou for m in hand])
    np.testing.assert_allclose(fit.harmonic, h)
    np.testing.assert_allclose(fit.unseen_miou, [m.unseen_miou for m in hand])
    assert fit.offset == offsets[int(np.argmax(h))]
    assert fit.num_images == 3 and len(fit.to_dict()["curve"]) == 11


def test_default_grid_spans_one_logit_scale(tiny_model):
    grid = default_offsets(tiny_model)
    assert grid[0] == 0 and grid[-1] == pytest.approx(float(tiny_model.head.scale))


def test_bad_offsets_are_named(tiny_model, dataset):
    with pytest.raises(ValueError, match="offsets must be"):
        fit_seen_offset(tiny_model, dataset, LABELS, UNSEEN, [float("nan")], progress=False)
