"""Readable evaluation summaries: the settings table, its header, the JSON record and Markdown."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lseg_nb.apps.reports import evaluation_table, format_table, markdown_table, metrics_rows
from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.utils.labels import LabelSplit

NAMES = ["a", "b", "c"]
PLAIN = EvalConfig(bootstrap=0)


def _data(images, labels, unseen=()) -> EvalData:
    return EvalData(
        list(zip(images, labels)), LabelSplit.from_labels(NAMES, unseen), "toy", "test", 0 if unseen else None
    )


@pytest.fixture
def zero_shot(tiny_model, images, labels):
    return run_dense(tiny_model, _data(images, labels, [2]), PLAIN, progress=False)


@pytest.fixture
def fixed(tiny_model, images, labels):
    data = dataclasses.replace(_data(images, labels), split="val")
    return run_dense(tiny_model, data, PLAIN, progress=False)


def test_zero_shot_rows_name_each_setting_and_its_chance_baselines(zero_shot):
    rows = metrics_rows(zero_shot)
    assert [r["setting"].strip() for r in rows] == [
        "all 3 labels (generalised zero-shot)",
        f"chance: every pixel = majority class ({zero_shot.settings['all_labels'].baseline.majority_class})",
        "chance: uniform guess over 3 labels",
        "unseen 1 label only (ZS3Net/SPNet-style)",
        "chance: every pixel = majority class (c)",
        "chance: uniform guess over 1 label",
    ]
    general, g_major, g_uniform, unseen_only, majority, uniform = rows
    assert list(general) == [
        "setting",
        "mIoU",
        "Open mIoU",
        "pixel acc",
        "seen mIoU",
        "unseen mIoU",
        "harmonic",
    ]
    assert general["mIoU"] == round(100 * zero_shot.all_labels.miou, 1)
    assert general["Open mIoU"] == round(100 * zero_shot.all_labels.open_miou, 1)
    assert g_major["Open mIoU"] is None  # chance rows have no class similarity
    assert general["seen mIoU"] == round(100 * zero_shot.all_labels.seen_miou, 1)
    assert g_uniform["pixel acc"] == round(100 / 3, 1) and g_uniform["seen mIoU"] is None
    assert g_major["pixel acc"] == round(
        100 * zero_shot.settings["all_labels"].baseline.majority_pixel_acc, 1
    )
    assert unseen_only["mIoU"] == round(100 * zero_shot.unseen_only.miou, 1)
    assert majority["pixel acc"] == 100.0  # one unseen class: the majority guess is always right
    assert uniform["pixel acc"] == 100.0
    assert "paper" not in " ".join(r["setting"] for r in rows)


def test_fold_less_rows_leave_out_the_seen_unseen_columns(fixed):
    rows = metrics_rows(fixed)
    assert [r["setting"].strip().split(" (")[0] for r in rows] == [
        "all 3 labels",
        "chance: every pixel = majority class",
        "chance: uniform guess over 3 labels",
    ]
    assert rows[0]["setting"] == "all 3 labels (fixed set)"
    assert all(list(r) == ["setting", "mIoU", "Open mIoU", "pixel acc"] for r in rows)


def test_open_miou_column_and_its_source_leave_with_the_similarity(tiny_model, images, labels):
    off = run_dense(tiny_model, _data(images, labels), EvalConfig(bootstrap=0, open_similarity="none"))
    assert list(metrics_rows(off)[0]) == ["setting", "mIoU", "pixel acc"]
    assert "Open mIoU" not in evaluation_table(off)


def test_table_names_data_protocol_and_has_no_matrices(zero_shot, fixed):
    text = evaluation_table(zero_shot)
    lines = text.splitlines()
    assert lines[0] == "toy, test split, fold 0 (unseen: c), 2 images"
    assert lines[1] == (
        "protocol: single (one pass over the whole image); values in %; Open mIoU similarity: text encoder"
    )
    assert lines[2].split() == [
        "setting",
        "mIoU",
        "Open",
        "mIoU",
        "pixel",
        "acc",
        "seen",
        "mIoU",
        "unseen",
        "mIoU",
        "harmonic",
    ]
    assert len(lines) == 3 + 1 + 6  # header, rule, six rows
    assert "confusion" not in text and "[" not in text
    assert len({len(line) for line in lines[2:]}) == 1  # fixed-width columns
    plain = evaluation_table(fixed)
    assert plain.splitlines()[0] == "toy, val split, no zero-shot fold, 2 images"
    assert "seen mIoU" not in plain and "harmonic" not in plain


def test_record_is_json_with_the_data_and_setting_names(zero_shot, fixed):
    record = json.loads(json.dumps(zero_shot.to_dict(), allow_nan=False))
    assert (record["dataset"], record["split"], record["fold"], record["unseen_classes"]) == (
        "toy",
        "test",
        0,
        ["c"],
    )
    assert record["settings"]["all_labels"]["confusion"] == zero_shot.confusion.tolist()
    assert "ZS3Net/SPNet-style" in record["settings"]["unseen_only"]["description"]
    assert "majority" in record["baseline_description"]
    assert set(fixed.to_dict()["settings"]) == {"all_labels"}


def test_text_and_markdown_tables():
    rows = [{"setting": "x", "mIoU": 1.5, "seen": None}, {"setting": "  longer", "mIoU": 10.0, "seen": 2.0}]
    assert format_table(rows).splitlines() == [
        "setting   mIoU  seen",
        "--------  ----  ----",
        "x          1.5     -",
        "  longer  10.0   2.0",
    ]
    assert markdown_table(rows).splitlines() == [
        "| setting | mIoU | seen |",
        "| --- | --- | --- |",
        "| x | 1.5 |  |",
        "| longer | 10.0 | 2.0 |",
    ]
    assert format_table([]) == "" and markdown_table([]) == ""


def test_calibrated_row_follows_the_generalised_one(tiny_model, images, labels, zero_shot):
    cal = run_dense(tiny_model, _data(images, labels, [2]), PLAIN, progress=False, seen_offset=1.5)
    rows = metrics_rows(cal)
    assert rows[0] == metrics_rows(zero_shot)[0]  # the uncalibrated model stays first
    assert rows[1]["setting"] == "all 3 labels, seen-bias calibrated (offset 1.50 from val)"
    assert rows[1]["unseen mIoU"] == round(100 * cal.calibrated.unseen_miou, 1)
    assert rows[1]["harmonic"] == (
        None
        if cal.calibrated.harmonic_iou != cal.calibrated.harmonic_iou
        else round(100 * cal.calibrated.harmonic_iou, 1)
    )
    assert len(rows) == len(metrics_rows(zero_shot)) + 1
    assert "calibrated" in cal.to_dict()["settings"]
    assert "calibrated" not in zero_shot.to_dict()["settings"]
