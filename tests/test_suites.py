"""The suites' data against an independent transcription: ../shared/reference/ovss/README.md (its settings table,
segmentor defaults and published numbers) and the class files themselves."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re

import pytest

from lseg_nb.config import suites
from lseg_nb.config.suites import (
    CATSEG_PROTOCOL,
    CROSSDATASET,
    HARNESSES,
    NACLIP_COLUMN_ORDER,
    PUBLISHED_RESULTS,
    SETTINGS,
    SUITES,
    TRAININGFREE,
    average,
    get_settings,
)

DEFAULTS = {"logit_scale": 40.0, "prob_thd": 0.0, "area_thd": None, "mode": "sliding"}


def _readme(reference_root) -> str:
    return (reference_root / "ovss" / "README.md").read_text()


def _table_rows(text: str) -> dict[str, list[str]]:
    """classes file -> cells of the training-free settings table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("cls_"):
            rows[cells[1]] = cells
    return rows


def _overrides(text: str) -> dict:
    out = {}
    for key, value in re.findall(r"(logit_scale|prob_thd|area_thd|slide_crop) ([\d.]+)", text):
        if key == "slide_crop":
            out["mode"] = "single" if float(value) == 0 else "sliding"
        else:
            out[key] = float(value)
    return out


def test_settings_match_the_shared_reference_table(reference_root):
    rows = _table_rows(_readme(reference_root))
    assert len(rows) == 8
    for bench in TRAININGFREE.benchmarks:
        cells = rows[bench.classes_file.rsplit("/", 1)[1]]
        s_sclip, s_naclip = (int(v) for v in cells[2].split("/"))
        sclip_part, naclip_part = cells[3].split(";")
        for harness, short, part in (("sclip", s_sclip, sclip_part), ("naclip", s_naclip, naclip_part)):
            rec = get_settings(bench.name, harness)
            expected = {**DEFAULTS, **_overrides(part)}
            got = {k: getattr(rec, k) for k in expected}
            assert got == expected and rec.short_side == short, (bench.name, harness)
            assert rec.long_cap == 2048 and rec.crop_size == 224 and rec.stride_ratio == 0.5
            assert rec.pamr_steps == (10 if harness == "naclip" else 0) and rec.pamr_dilations == (8, 16)


def test_segmentor_defaults_as_the_shared_reference_states(reference_root):
    text = _readme(reference_root)
    assert "SCLIP `logit_scale=40, prob_thd=0.0, slide_crop=224, slide_stride=112, pamr_steps=0" in text
    assert "NACLIP the same but `pamr_steps=10` (PAMR on by default, dilations (8, 16))" in text
    voc20 = get_settings("voc20", "sclip")
    assert (voc20.logit_scale, voc20.prob_thd, voc20.crop_size * voc20.stride_ratio) == (40.0, 0.0, 112)


def test_clearclip_settings():
    for name in TRAININGFREE.datasets:
        rec = get_settings(name, "clearclip")
        assert (rec.short_side, rec.logit_scale, rec.pamr_steps, rec.area_thd) == (448, 50.0, 0, None)
        window = (224, 1.0) if name == "cityscapes" else (448, 0.5)
        assert (rec.crop_size, rec.stride_ratio) == window
    thd = {d: get_settings(d, "clearclip").prob_thd for d in ("voc21", "context60", "coco_object", "voc20")}
    assert thd == {"voc21": 0.5, "context60": 0.15, "coco_object": 0.4, "voc20": 0.0}


def test_published_numbers_match_the_shared_reference(reference_root):
    text = _readme(reference_root)
    published = text[text.index("Published (ViT-B/16") :]
    by_column = dict(zip(TRAININGFREE.columns, TRAININGFREE.datasets))
    for method, harness in (("SCLIP", "sclip"), ("NACLIP", "naclip")):
        chunk = published[published.index(f"{method} VOC21") :].split(".\n")[0].split(". ")[0]
        numbers = dict(re.findall(r"(VOC21|PC60|Object|VOC20|PC59|Stuff|City|ADE) ([\d.]+)", chunk))
        (rec,) = [r for r in PUBLISHED_RESULTS if r.method == method and r.harness == harness]
        # the shared file rounds the READMEs' two decimals half up (16.45 -> 16.5)
        assert {by_column[c] for c in numbers} == set(rec.miou)
        for column, value in numbers.items():
            assert abs(float(value) - rec.miou[by_column[column]]) <= 0.05 + 1e-9, (method, column)
    cross = text[text.index("Published CAT-Seg") :]
    b_values = [float(v) for v in re.findall(r"(?:A-847|PC-459|A-150|PC-59|PAS-20b?) ([\d.]+)", cross)[:6]]
    l_text = re.search(r"\(ViT-L/14\): ([\d. /]+)", cross).group(1).rstrip(". ")
    l_values = [float(v) for v in l_text.split(" / ")]
    for backbone, values in (("ViT-B/16", b_values), ("ViT-L/14", l_values)):
        (rec,) = [r for r in PUBLISHED_RESULTS if r.method == "CAT-Seg" and r.backbone == backbone]
        assert list(rec.miou.values()) == values and tuple(rec.miou) == CROSSDATASET.datasets


def test_published_averages_are_the_row_means():
    """A transcription check: every printed average is the mean of the row's numbers at the printed precision."""
    for rec in PUBLISHED_RESULTS:
        if rec.average is not None:
            decimals = len(str(rec.average).split(".")[1])
            assert round(average(rec.miou, tuple(rec.miou)), decimals) == rec.average, rec
        assert rec.status == "published, not reproduced here" and rec.source
    naclip = next(r for r in PUBLISHED_RESULTS if r.method == "NACLIP")
    assert naclip.pamr and tuple(naclip.miou) == NACLIP_COLUMN_ORDER
    with pytest.raises(ValueError, match=r"no mIoU for \['voc21'\]"):
        average({"voc20": 1.0}, ("voc20", "voc21"))


def test_column_orders(reference_root):
    assert TRAININGFREE.columns == ("VOC21", "PC60", "Object", "VOC20", "PC59", "Stuff", "City", "ADE")
    assert TRAININGFREE.datasets == (
        "voc21", "context60", "coco_object", "voc20", "context59", "coco_stuff164k", "cityscapes", "ade20k150",
    )  # fmt: skip
    header = re.search(r"test on (A-847[^\n]*)", _readme(reference_root)).group(1)
    assert CROSSDATASET.columns == tuple(c.strip() for c in header.split("/"))
    assert set(NACLIP_COLUMN_ORDER) == set(TRAININGFREE.datasets)
    assert SUITES["crossdataset"].benchmark("voc20b").background == 20
    with pytest.raises(ValueError, match="not a dataset of the trainingfree suite"):
        TRAININGFREE.benchmark("ade20k847")


def test_class_files_exist_with_the_stated_class_counts(reference_root):
    for bench in TRAININGFREE.benchmarks:
        lines = (reference_root / "ovss" / bench.classes_file).read_text().splitlines()
        assert len(lines) == bench.num_classes, bench.name
    for bench in CROSSDATASET.benchmarks:
        entries = json.loads((reference_root / "ovss" / bench.classes_file).read_text())
        assert len(entries) == (59 if bench.name == "voc20b" else bench.num_classes), bench.name
    object_lines = (reference_root / "ovss" / TRAININGFREE.benchmark("coco_object").classes_file).read_text()
    background, bed = object_lines.splitlines()[0].split(", "), object_lines.splitlines()[60]
    assert bed == "bed" and "bed" in background  # the note on the coco_object record


def test_every_harness_covers_every_dataset_and_errors_are_named():
    assert len(SETTINGS) == len(HARNESSES) * 8
    assert {(h, d) for h, d in SETTINGS} == {(h, d) for h in HARNESSES for d in TRAININGFREE.datasets}
    with pytest.raises(ValueError, match="unknown harness 'catseg'"):
        get_settings("voc21", "catseg")
    with pytest.raises(ValueError, match="'ade20k847' is not a training-free benchmark"):
        get_settings("ade20k847", "naclip")
    with pytest.raises(ValueError, match="harness 'lseg'"):
        dataclasses.replace(get_settings("voc21"), harness="lseg")


def test_records_are_plain_json_data_and_the_module_imports_nothing_of_lseg_nb():
    records = [*SETTINGS.values(), *PUBLISHED_RESULTS, CATSEG_PROTOCOL, TRAININGFREE, CROSSDATASET]
    for rec in records:
        json.dumps(dataclasses.asdict(rec))
    fields = get_settings("voc21", "naclip").eval_fields()
    assert json.loads(json.dumps(fields))["mode"] == "single"
    tree = ast.parse(inspect.getsource(suites))
    imported = [
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    ]
    assert not [m for m in imported if m and m.startswith("lseg_nb")]
