"""Prompt-template and class-name analyses (issue 18): each row equals a direct evaluation with exactly that
text, the encoder's templates are restored, a rename to the same name changes nothing, bad names are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lseg_nb.config import EvalConfig
from lseg_nb.diagnostics.prompts import renaming_analysis, template_analysis
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
