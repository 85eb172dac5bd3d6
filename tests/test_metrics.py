"""Metrics against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from lseg_nb.engine.metrics import (
    SegMetrics,
    chance_baseline,
    compute_metrics,
    confusion_matrices,
    confusion_matrix,
    fb_iou,
)

# rows = target, cols = prediction
CM = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]])
NAMES = ["sky", "cow", "grass"]


def test_confusion_matrix_counts_and_drops_void():
    target = torch.tensor([[0, 0, 1], [2, 255, 7]])
    pred = torch.tensor([[0, 1, 1], [0, 2, 2]])
    cm = confusion_matrix(pred, target, num_classes=3)
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    assert cm.dtype == torch.int64
    assert torch.equal(cm, expected)  # the 255 pixel and the out-of-range target 7 are dropped


def test_confusion_matrix_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 17, 19), generator=g)
    pred = torch.randint(0, 5, (3, 17, 19), generator=g)
    target[0, :3] = 255
    keep = target != 255
    ref = sk_confusion_matrix(target[keep].numpy(), pred[keep].numpy(), labels=list(range(5)))
    np.testing.assert_array_equal(confusion_matrix(pred, target, 5).numpy(), ref)


def test_confusion_matrix_custom_ignore_index():
    target = torch.tensor([0, 1, 2])
    pred = torch.tensor([0, 0, 0])
    cm = confusion_matrix(pred, target, 3, ignore_index=1)
    assert torch.equal(cm, torch.tensor([[1, 0, 0], [0, 0, 0], [1, 0, 0]]))


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 2]), 3)
    with pytest.raises(TypeError, match="argmax"):
        confusion_matrix(torch.rand(4), torch.tensor([0, 1, 2, 0]), 3)


def test_compute_metrics_hand_computed():
    m = compute_metrics(CM, NAMES)
    # IoU = TP / (row + col - TP): 3/5, 2/5, 1/4
    assert m.per_class_iou == pytest.approx((0.6, 0.4, 0.25))
    assert m.miou == pytest.approx(1.25 / 3)
    assert m.pixel_acc == pytest.approx(0.6)
    assert m.mean_acc == pytest.approx((3 / 4 + 2 / 4 + 1 / 2) / 3)
    assert m.num_pixels == 10
    assert m.iou_of("cow") == pytest.approx(0.4)
    assert m.seen_miou is None and m.unseen_miou is None and m.harmonic_iou is None
    # torch input gives the same result
    assert compute_metrics(torch.from_numpy(CM), NAMES).miou == pytest.approx(m.miou)


def test_seen_unseen_harmonic():
    m = compute_metrics(CM, NAMES, seen=[0, 1], unseen=[2])
    assert m.seen_miou == pytest.approx(0.5)
    assert m.unseen_miou == pytest.approx(0.25)
    assert m.harmonic_iou == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    # one side given: the other is the complement
    m2 = compute_metrics(CM, NAMES, unseen=[2])
    assert m2.seen_miou == pytest.approx(0.5) and m2.harmonic_iou == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="both seen and unseen"):
        compute_metrics(CM, NAMES, seen=[0, 2], unseen=[2])
    with pytest.raises(ValueError, match="outside"):
        compute_metrics(CM, NAMES, unseen=[3])


def test_absent_class_is_nan_and_excluded():
    cm = np.zeros((4, 4), dtype=int)
    cm[:3, :3] = CM
    m = compute_metrics(cm, [*NAMES, "horse"], unseen=[3])
    assert math.isnan(m.per_class_iou[3])
    assert m.miou == pytest.approx(1.25 / 3)
    assert m.mean_acc == pytest.approx((3 / 4 + 2 / 4 + 1 / 2) / 3)
    assert math.isnan(m.unseen_miou) and math.isnan(m.harmonic_iou)
    d = m.to_dict()
    assert d["per_class_iou"][3] is None and d["unseen_miou"] is None
    assert d["per_class"]["sky"] == pytest.approx(0.6)
    json.dumps(d, allow_nan=False)  # JSON-safe


def test_predicted_but_absent_in_target_counts_as_zero():
    cm = np.array([[2, 1], [0, 0]])  # class 1 never in target but predicted once
    m = compute_metrics(cm, ["a", "b"])
    assert m.per_class_iou == pytest.approx((2 / 3, 0.0))
    assert m.miou == pytest.approx(1 / 3)
    assert m.mean_acc == pytest.approx(2 / 3)  # recall only over classes present in the target


def test_fb_iou_binary():
    cm = np.array([[5, 1], [2, 4]])
    expected = (5 / 8 + 4 / 7) / 2
    assert fb_iou(cm) == pytest.approx(expected)
    assert fb_iou(cm, background=0) == pytest.approx(expected)
    assert compute_metrics(cm, ["bg", "fg"], background=0).fb_iou == pytest.approx(expected)


def test_fb_iou_multiclass_needs_an_explicit_background():
    # background 0: fg = {1, 2} merged -> [[3, 1], [1, 5]] -> IoUs 3/5 and 5/7
    assert fb_iou(CM, background=0) == pytest.approx((3 / 5 + 5 / 7) / 2)
    # no background: undefined (a mean over classes of (IoU(c) + IoU(not c)) / 2 is inflated by true negatives)
    assert fb_iou(CM) is None and compute_metrics(CM, NAMES).fb_iou is None
    assert compute_metrics(CM, NAMES).to_dict()["fb_iou"] is None


def test_uniform_chance_predictor_has_no_inflated_fb_iou():
    # 20 classes, a uniform random predictor: mIoU ~ 1/39; the old multi-class "FB-IoU" gave ~0.47
    rng = np.random.default_rng(0)
    target, pred = rng.integers(0, 20, 200_000), rng.integers(0, 20, 200_000)
    cm = np.zeros((20, 20), dtype=np.int64)
    np.add.at(cm, (target, pred), 1)
    m = compute_metrics(cm, [str(i) for i in range(20)])
    assert m.miou == pytest.approx(1 / 39, rel=0.05) and m.fb_iou is None


def test_chance_baseline_by_hand():
    cm = np.array([[6, 2, 0], [1, 2, 0], [0, 0, 0]])  # target counts 8, 3, 0 (N = 11); predictions ignored
    b = chance_baseline(cm, ["a", "b", "c"])
    assert b.majority_class == "a"
    assert b.majority_pixel_acc == pytest.approx(8 / 11)
    assert b.majority_miou == pytest.approx(8 / 11 / 2)  # two classes present; only "a" scores
    assert b.uniform_pixel_acc == pytest.approx(1 / 3)
    # a uniform guess predicts "c" too, so "c" has a union (IoU 0) and counts in the mean, as in compute_metrics
    expect = ((8 / 3) / (8 + 11 / 3 - 8 / 3) + (3 / 3) / (3 + 11 / 3 - 3 / 3)) / 3
    assert b.uniform_miou == pytest.approx(expect)
    # two balanced unseen classes: the majority baseline alone reaches 25 mIoU / 50 % pixel accuracy
    two = chance_baseline(np.array([[5, 5], [5, 5]]), ["x", "y"])
    assert (two.majority_miou, two.majority_pixel_acc, two.uniform_pixel_acc) == (0.25, 0.5, 0.5)


def test_uniform_chance_equals_a_simulated_uniform_guess_with_absent_labels():
    """8 labels, 2 present in the target: every label is predicted by a uniform random guess, so all 8 have a
    union and enter its mIoU (0.027 here); the baseline used to average over the 2 present classes (4x more)."""
    rng = np.random.default_rng(0)
    target = rng.choice(2, size=400_000, p=[0.7, 0.3])
    pred = rng.integers(0, 8, size=target.size)
    cm = np.zeros((8, 8), np.int64)
    np.add.at(cm, (target, pred), 1)
    simulated = compute_metrics(cm, [str(i) for i in range(8)]).miou
    baseline = chance_baseline(cm, [str(i) for i in range(8)]).uniform_miou
    assert simulated == pytest.approx(baseline, abs=0.001)
    assert simulated == pytest.approx(0.027, abs=0.001)


def test_perfect_and_empty():
    perfect = compute_metrics(np.diag([4, 0, 5]), NAMES)
    assert perfect.miou == 1.0 and perfect.pixel_acc == 1.0 and perfect.fb_iou is None
    assert math.isnan(perfect.per_class_iou[1])
    empty = compute_metrics(np.zeros((3, 3), dtype=int), NAMES)
    assert math.isnan(empty.miou) and math.isnan(empty.pixel_acc) and empty.num_pixels == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        compute_metrics(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="class names"):
        compute_metrics(CM, ["a", "b"])
    with pytest.raises(ValueError, match="background"):
        fb_iou(CM, background=5)


def test_segmetrics_is_frozen():
    m = compute_metrics(CM, NAMES)
    assert isinstance(m, SegMetrics)
    with pytest.raises(AttributeError):
        m.miou = 1.0  # type: ignore[misc]


def test_confusion_matrices_per_image_sum_to_the_dataset_matrix():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.randint(0, 3, (4, 5, 6), generator=g), torch.randint(0, 4, (4, 5, 6), generator=g)
    target[0, 0] = 255  # void, and class 3 is outside the 3 scored classes: both dropped
    per_image = confusion_matrices(pred, target, 3)
    assert per_image.shape == (4, 3, 3)
    for i in range(4):
        assert torch.equal(per_image[i], confusion_matrix(pred[i], target[i], 3))
    assert torch.equal(per_image.sum(0), confusion_matrix(pred, target, 3))


def test_unchecked_counting_never_reads_device_values():
    """check=False counts without a host read: it runs on 'meta' tensors (shapes only), the checked form cannot."""
    pred = torch.zeros(2, 4, 4, dtype=torch.long, device="meta")
    assert confusion_matrix(pred, pred, 3, check=False).shape == (3, 3)
    with pytest.raises(Exception):  # noqa: B017 - the range check reads the predictions on the host
        confusion_matrix(pred, pred, 3)
