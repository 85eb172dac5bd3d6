"""Open mIoU (Zhou et al., arXiv 2311.03352): soft true positives weighted by the similarity of the predicted and
the true class, on a hand-computed case, against the authors' evaluator's arithmetic, from both similarity
sources, and reported beside mIoU by the dense evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.engine.metrics import compute_metrics, open_confusion
from lseg_nb.engine.open_miou import load_similarity, text_similarity
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

NAMES = ["sofa", "chair", "sky"]
# S[pred, gt]: sofa and chair are near-synonyms, sky is unrelated to both
S = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.1], [0.1, 0.1, 1.0]])


def test_near_synonym_and_unrelated_errors_get_different_credit():
    # rows = target: 10 sofa pixels, 6 right, 2 called chair (near-synonym), 2 called sky (unrelated)
    cm = np.array([[6, 2, 2], [0, 5, 0], [0, 0, 10]])
    plain = compute_metrics(cm, NAMES, similarity=S)
    assert plain.per_class_iou == pytest.approx((6 / 10, 5 / 7, 10 / 12))
    # by hand: sofa tp' = 6 + 2*0.8 + 2*0.1 = 7.8 over its 10 pixels; chair keeps 5 but 2*(1-0.8) = 0.4 false
    # positives; sky keeps 10 with 2*(1-0.1) = 1.8 false positives
    open_iou = (7.8 / 10, 5 / 5.4, 10 / 11.8)
    assert compute_metrics(open_confusion(cm, S), NAMES).per_class_iou == pytest.approx(open_iou)
    assert plain.open_miou == pytest.approx(sum(open_iou) / 3)
    assert plain.miou == pytest.approx((0.6 + 5 / 7 + 10 / 12) / 3)
    # the same two wrong pixels of sofa: called chair they earn 0.8 each, called sky 0.1 each
    near = compute_metrics(open_confusion(np.array([[8, 2, 0], [0, 5, 0], [0, 0, 10]]), S), NAMES)
    far = compute_metrics(open_confusion(np.array([[8, 0, 2], [0, 5, 0], [0, 0, 10]]), S), NAMES)
    assert near.per_class_iou[0] == pytest.approx(9.6 / 10)
    assert far.per_class_iou[0] == pytest.approx(8.2 / 10)


def _reference_open_miou(cm_gt_pred: np.ndarray, void_pixels: np.ndarray, sim: np.ndarray) -> float:
    """The authors' evaluator's arithmetic (ow_sem_seg_evaluation.py lines 164-189): a (K+1)^2 matrix indexed
    [pred, gt] with an ignore column for void pixels, soft diagonal, then detectron2's mIoU."""
    k = cm_gt_pred.shape[0]
    c = np.zeros((k + 1, k + 1))
    c[:k, :k] = cm_gt_pred.T
    c[:k, k] = void_pixels  # predicted p on a void pixel
    s = np.ones((k + 1, k + 1))
    s[:k, :k] = sim
    tp_soft = (c * s).sum(0)
    c = c * (1 - s)
    c[np.diag_indices_from(c)] = tp_soft
    tp = c.diagonal()[:-1]
    pos_gt, pos_pred = c[:-1, :-1].sum(0), c[:-1, :-1].sum(1)
    valid = pos_gt > 0
    iou = tp[valid] / (pos_gt + pos_pred - tp)[valid]
    return float(iou.sum() / ((pos_gt + pos_pred) > 0).sum())


def test_matches_the_authors_evaluator_on_random_counts():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(2, 7))
        cm = rng.integers(0, 50, (k, k)) * (rng.random((k, k)) < 0.7)
        cm[rng.integers(k)] = 0  # an absent class that may still be predicted
        sim = rng.random((k, k))  # not symmetric: the orientation [pred, gt] matters
        np.fill_diagonal(sim, 1.0)
        ours = compute_metrics(cm, [str(i) for i in range(k)], similarity=sim).open_miou
        assert ours == pytest.approx(_reference_open_miou(cm, rng.integers(0, 9, k), sim), abs=1e-12)


def test_an_identity_similarity_gives_plain_miou_and_bad_matrices_are_refused():
    cm = np.array([[6, 2, 2], [0, 5, 0], [1, 0, 10]])
    m = compute_metrics(cm, NAMES, similarity=np.eye(3))
    assert m.open_miou == m.miou
    with pytest.raises(ValueError, match="ones on the diagonal"):
        open_confusion(cm, S * 0.5)
    with pytest.raises(ValueError, match="does not match"):
        open_confusion(cm, np.eye(2))


class _FixedText(nn.Module):
    """A model whose text encoder maps each name to a fixed 2-d vector (an input, not our code)."""

    VECTORS = {"sofa": [1.0, 0.0], "couch": [0.6, 0.8], "chair": [0.8, 0.6], "sky": [-1.0, 0.0]}

    def encode_text(self, names):
        return torch.tensor([self.VECTORS[n] for n in names])


def test_text_encoder_similarity_takes_the_closest_names_and_clips_negatives():
    labels = LabelSplit.from_labels(["sofa|couch", "chair", "sky"])
    sim = text_similarity(_FixedText(), labels)
    # sofa-class vs chair: cos(sofa, chair) = 0.8, cos(couch, chair) = 0.96 -> the closer name pair
    expected = np.array([[1.0, 0.96, 0.0], [0.96, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert sim == pytest.approx(expected)


def test_csv_matrix_is_read_by_name_and_checked(tmp_path):
    labels = LabelSplit.from_labels(NAMES)
    path = tmp_path / "sim.csv"
    # the paper's layout (index column, header of names), rows in another order than the label set
    path.write_text(",sky,sofa,chair\nchair,0.1,0.8,1\nsky,1,0.1,0.1\nsofa,0.1,1,0.8\n")
    assert load_similarity(path, labels) == pytest.approx(S)
    path.write_text(",sky,sofa\nsky,1,0.1\nsofa,0.1,1\n")
    with pytest.raises(InputError, match=r"sim.csv has no row or column for classes \['chair'\]"):
        load_similarity(path, labels)
    path.write_text(",sky,sofa,chair\nchair,0.1,0.8,1\nsky,1,0.1,0.1\nsofa,0.1,0.9,0.8\n")
    with pytest.raises(InputError, match=r"classes \['sofa'\] are not similar 1 to themselves"):
        load_similarity(path, labels)
    with pytest.raises(InputError, match="does not exist"):
        load_similarity(tmp_path / "missing.csv", labels)


def _data() -> EvalData:
    g = torch.Generator().manual_seed(0)
    items = [
        (torch.randn(3, 32, 32, generator=g), torch.randint(0, 3, (32, 32), generator=g)) for _ in range(3)
    ]
    return EvalData(items, LabelSplit.from_labels(NAMES, ["sky"]))


def test_dense_evaluation_reports_open_miou_beside_miou(tiny_model, tmp_path):
    data = _data()
    text = run_dense(tiny_model, data, EvalConfig(bootstrap=0), progress=False)
    for s in text.settings.values():  # soft credit never lowers an IoU
        assert s.metrics.open_miou >= s.metrics.miou
    general = text.settings["all_labels"]
    sim = text_similarity(tiny_model, data.labels)
    assert general.metrics.open_miou == compute_metrics(general.confusion, NAMES, similarity=sim).open_miou
    assert general.metrics.open_miou > general.metrics.miou  # the random model confuses classes
    path = tmp_path / "eye.csv"
    path.write_text(",sofa,chair,sky\nsofa,1,0,0\nchair,0,1,0\nsky,0,0,1\n")
    eye = run_dense(tiny_model, data, EvalConfig(bootstrap=0, open_similarity=str(path)), progress=False)
    assert eye.all_labels.open_miou == eye.all_labels.miou == text.all_labels.miou
    off = run_dense(tiny_model, data, EvalConfig(bootstrap=0, open_similarity="none"), progress=False)
    assert off.all_labels.open_miou is None
    assert text.to_dict()["settings"]["all_labels"]["metrics"]["open_miou"] == general.metrics.open_miou
