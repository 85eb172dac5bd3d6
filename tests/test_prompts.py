"""Prompt-template and class-name analyses (issue 18): each row equals a direct evaluation with exactly that
text, the encoder's templates are restored, a rename to the same name changes nothing, bad names are refused;
FLOSS's entropy ranking, selection and expert fusion on toy probabilities whose answer is known by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from lseg_nb.config import EvalConfig
from lseg_nb.diagnostics.prompts import (
    TemplateRanking,
    entropy_counts,
    floss_analysis,
    floss_rankings,
    fuse_experts,
    rank_templates,
    renaming_analysis,
    template_analysis,
)
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.utils.labels import LabelSplit

QUIET = EvalConfig(bootstrap=0)


def _data() -> EvalData:
    g = torch.Generator().manual_seed(0)
    items = [
        (torch.randn(3, 32, 32, generator=g), torch.randint(0, 3, (32, 32), generator=g)) for _ in range(3)
    ]
    return EvalData(items, LabelSplit.from_labels(["sky", "grass", "cow"]))


def _direct(model, data) -> list[float]:
    return list(run_dense(model, data, QUIET, 0, False).all_labels.per_class_iou)


def test_each_template_row_is_that_template_alone_and_the_last_their_average(tiny_model):
    data, templates = _data(), ["{}", "a photo of a {}."]
    rows = template_analysis(tiny_model, data, templates, QUIET)
    assert [r.variant for r in rows] == ["{}", "a photo of a {}.", "average of all"]
    assert tiny_model.text_encoder.templates == ("{}",)  # restored
    for row, t in zip(rows, [("{}",), ("a photo of a {}.",), tuple(templates)], strict=True):
        tiny_model.text_encoder.templates = t
        assert list(row.per_class_iou.values()) == pytest.approx(_direct(tiny_model, data), nan_ok=True)
    tiny_model.text_encoder.templates = ("{}",)
    assert rows[0].per_class_iou != rows[1].per_class_iou  # the random encoder sees other prompts


def test_renaming_rows_and_spread(tiny_model):
    data = _data()
    rows, spread = renaming_analysis(tiny_model, data, {"cow": ["cow", "calf"]}, QUIET)
    assert [r.variant for r in rows] == ["original names", "cow -> cow", "cow -> calf"]
    assert rows[1].per_class_iou == rows[0].per_class_iou  # the same name: nothing moves
    renamed = dataclasses.replace(data, labels=LabelSplit.from_labels(["sky", "grass", "calf"]))
    assert list(rows[2].per_class_iou.values()) == pytest.approx(_direct(tiny_model, renamed), nan_ok=True)
    cow = [r.per_class_iou["cow"] for r in rows]
    assert spread["cow"] == pytest.approx(max(cow) - min(cow))
    with pytest.raises(ValueError, match=r"classes \['horse'\] are not in the label set"):
        renaming_analysis(tiny_model, data, {"horse": ["pony"]})


def _pixels(*dists) -> torch.Tensor:
    """Class distributions of a row of pixels -> ``(1, C, 1, W)`` probabilities."""
    return torch.tensor(dists, dtype=torch.float64).T[None, :, None, :]


def _h(*p) -> float:
    return -sum(x * math.log(x + 1e-10) for x in p)


def test_floss_ranks_the_confident_template_first_for_each_class():
    # a toy model's two templates on the same 4 unlabelled pixels (2 classes):
    # template A is sure about class 0 and hesitant about class 1, template B the other way round
    a = _pixels((0.9, 0.1), (0.9, 0.1), (0.4, 0.6), (0.4, 0.6))
    b = _pixels((0.6, 0.4), (0.6, 0.4), (0.05, 0.95), (0.05, 0.95))
    (sa, ca), (sb, cb) = entropy_counts(a), entropy_counts(b)
    assert list(ca) == [2, 2] and list(cb) == [2, 2]
    assert sa == pytest.approx([2 * _h(0.9, 0.1), 2 * _h(0.4, 0.6)])
    entropy = np.stack([sa / ca, sb / cb], 1)  # (C, T)
    ranking = TemplateRanking(("A {}", "B {}"), ("x", "y"), entropy, np.full((2, 2), 0.5), 1)
    assert ranking.selection(1) == [("A {}",), ("B {}",)]
    assert ranking.selection(4) == [("A {}", "B {}"), ("B {}", "A {}")]


def test_rank_templates_skips_templates_that_never_predict_a_class_and_keeps_ties_in_order():
    entropy = np.array([[0.5, np.nan, 0.5, 0.2], [np.nan, np.nan, np.nan, np.nan]])
    fraction = np.array([[0.1, 0.0, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
    assert rank_templates(entropy, fraction, 2) == [[3, 0], []]
    assert rank_templates(entropy, fraction, 4) == [[3, 0, 2], []]
    ranking = TemplateRanking(("a", "b", "c", "d"), ("x", "y"), entropy, fraction, 1)
    assert ranking.selection(1) == [("d",), None]  # no template predicts y: it keeps every template


def test_fuse_experts_exact_match_conflict_and_no_claim():
    c0 = _pixels((0.7, 0.2, 0.1), (0.5, 0.4, 0.1), (0.2, 0.3, 0.5), (0.1, 0.6, 0.3))
    c1 = _pixels((0.1, 0.8, 0.1), (0.3, 0.6, 0.1), (0.2, 0.2, 0.6), (0.6, 0.3, 0.1))
    c2 = _pixels((0.5, 0.2, 0.3), (0.5, 0.2, 0.3), (0.1, 0.1, 0.8), (0.5, 0.3, 0.2))
    default = _pixels((0.1, 0.1, 0.8), (0.1, 0.1, 0.8), (0.1, 0.1, 0.8), (0.2, 0.1, 0.7))
    fused = fuse_experts(torch.stack([c0, c1, c2]), default)
    # pixel 0: experts 0 (0.7) and 1 (0.8) both claim -> expert 1; pixel 1: 0 (0.5) vs 1 (0.6) -> expert 1;
    # pixel 2: only expert 2 claims; pixel 3: no expert predicts its own class -> the default
    expected = torch.cat([c1[..., 0:1], c1[..., 1:2], c2[..., 2:3], default[..., 3:4]], -1)
    assert torch.equal(fused, expected)
    tie = fuse_experts(torch.stack([c0, c0.roll(1, 1), c2]), default)  # pixel 0: 0.7 vs 0.7 -> the first
    assert torch.equal(tie[..., 0], c0[..., 0])


def test_floss_with_every_template_for_every_class_is_the_average(tiny_model):
    data, templates = _data(), ["{}", "a photo of a {}.", "a {} in a scene"]
    ranking = floss_rankings(tiny_model, data, templates, QUIET)
    assert tiny_model.text_encoder.templates == ("{}",)  # restored
    assert ranking.entropy.shape == (3, 3) and ranking.num_images == 3
    assert ranking.pixel_fraction.sum(0) == pytest.approx(np.ones(3))  # each template predicts every pixel
    full = TemplateRanking(ranking.templates, ranking.class_names, np.zeros((3, 3)), np.ones((3, 3)), 3)
    _, rows = floss_analysis(tiny_model, data, templates, QUIET, top_n=3, ranking=full)
    average = template_analysis(tiny_model, data, templates, QUIET)[-1]
    assert [r.variant for r in rows] == ["average of all", "FLOSS top-3"]
    assert rows[0].per_class_iou == pytest.approx(
        average.per_class_iou, nan_ok=True
    )  # the one scoring loop's
    assert rows[1].per_class_iou == rows[0].per_class_iou  # every expert is the default classifier
    ranked, rows = floss_analysis(tiny_model, data, templates, QUIET, top_n=1)
    assert ranked.selection(1) == ranking.selection(1) and len(rows) == 2
    with pytest.raises(ValueError, match="other templates"):
        floss_analysis(tiny_model, data, templates[:2], QUIET, ranking=ranking)
