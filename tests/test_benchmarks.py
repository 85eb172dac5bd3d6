"""Benchmark adapters and manifests: label texts and split lists against ../shared/reference, folds, zero-shot
label mapping, episode determinism and ``prepare`` on fixtures the tests write in each on-disk format."""

from __future__ import annotations

import collections
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lseg_nb.data.benchmarks import ade20k, coco20i, fss1000, pascal5i, registry
from lseg_nb.data.benchmarks.base import (
    MissingDataError,
    load_benchmark_manifest,
    others_label_split,
    parse_benchmark_manifest,
    read_label_file,
)
from lseg_nb.data.manifests import ManifestError, file_sha256, read_plain_yaml

BENCHMARKS = ("pascal5i", "coco20i", "fss1000", "ade20k150")


@pytest.fixture
def ref(reference_root: Path) -> Path:
    """../shared/reference (conftest: required when CI=true, skipped with a reason otherwise)."""
    return reference_root


# ---------------------------------------------------------------- manifests vs the published files


@pytest.mark.parametrize("name", BENCHMARKS)
def test_embedded_label_texts_equal_the_official_label_files(name, ref):
    m = load_benchmark_manifest(name)
    path = ref / "labels" / m.label_file
    assert file_sha256(path) == m.label_file_sha256
    assert tuple(read_label_file(path, m)) == m.classes
    if (
        name == "ade20k150"
    ):  # the official reader by hand: last comma field, first ';' synonym, header dropped
        rows = path.read_text().strip().split("\n")[1:]
        assert list(m.classes) == [r.strip().split(",")[-1].split(";")[0] for r in rows]
    else:
        assert list(m.classes) == [ln.strip() for ln in path.read_text().split("\n") if ln.strip()]


def test_split_list_hashes_and_counts_equal_the_published_lists(ref):
    for name in ("pascal5i", "fss1000"):
        m = load_benchmark_manifest(name)
        for s in m.split_lists:
            path = ref / "splits" / s.relpath
            assert file_sha256(path) == s.sha256, s.relpath
            assert len([ln for ln in path.read_text().splitlines() if ln.strip()]) == s.lines


def test_fold_definitions():
    p = load_benchmark_manifest("pascal5i")
    assert [p.classes[c - 1] for c in pascal5i.fold_class_ids(0)] == [
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
    ]
    for f in range(4):
        assert pascal5i.fold_class_ids(f) == [5 * f + i for i in range(1, 6)]
    c = load_benchmark_manifest("coco20i")
    for f in range(4):
        assert coco20i.fold_class_ids(f) == [f + 1 + 4 * k for k in range(20)]
    assert [c.classes[i - 1] for i in coco20i.fold_class_ids(0)[:4]] == [
        "person",
        "aeroplane",
        "boat",
        "parkingmeter",
    ]
    for m, folds in ((p, range(4)), (c, range(4))):  # folds partition the classes
        ids = [i for f in folds for i in m.fold_class_ids(f)]
        assert sorted(ids) == list(range(1, len(m.classes) + 1))
    assert fss1000.test_class_ids() == list(range(761, 1001))
    assert (
        c.category_ids[:5] == (1, 2, 3, 4, 5) and c.category_ids[-1] == 90 and len(set(c.category_ids)) == 80
    )


def test_published_pascal_lists_are_consistent_with_their_folds(ref):
    counts = {"val": [346, 451, 725, 346], "trn": [2286, 3425, 5883, 2086]}
    for split, expected in counts.items():
        for f in range(4):
            episodes = pascal5i.read_episodes(ref / "splits" / "pascal" / split / f"fold{f}.txt")
            assert len(episodes) == expected[f]
            # HSNet's trn/fold<f> and val/fold<f> both list episodes of fold f's classes; training for fold f
            # reads the other three trn lists, so no episode class of training is an unseen class of fold f.
            assert {e.class_id for e in episodes} == set(pascal5i.fold_class_ids(f))
    for f in range(4):
        train = {
            e.class_id
            for g in range(4)
            if g != f
            for e in pascal5i.read_episodes(ref / f"splits/pascal/trn/fold{g}.txt")
        }
        assert not train & set(pascal5i.fold_class_ids(f))


def test_published_fss_lists(ref):
    read = lambda s: [ln for ln in (ref / "splits" / "fss" / f"{s}.txt").read_text().splitlines() if ln]  # noqa: E731
    trn, val, test = read("trn"), read("val"), read("test")
    assert (len(trn), len(val), len(test)) == (520, 240, 240)
    assert not set(test) & set(trn) and not set(test) & set(val) and not set(trn) & set(val)
    names = fss1000.manifest().classes
    # the official class id: sorted(split).index(class) + offset; the label file is sorted(trn)+sorted(val)+sorted(test)
    assert list(names) == sorted(trn) + sorted(val) + sorted(test)
    assert [names[c - 1] for c in fss1000.test_class_ids()] == sorted(test)


def test_manifest_errors_name_the_file_and_field(tmp_path):
    data = read_plain_yaml(load_benchmark_manifest("pascal5i").path)
    with pytest.raises(ManifestError, match=r"bad\.yaml: unknown field\(s\) \['extra'\]"):
        parse_benchmark_manifest({**data, "extra": 1}, tmp_path / "bad.yaml")
    folds = [{"name": "fold0", "unseen": ["aeroplane", "unicorn"]}]
    with pytest.raises(ManifestError, match=r"folds\[0\]: unseen class 'unicorn'"):
        parse_benchmark_manifest({**data, "folds": folds}, tmp_path / "bad.yaml")
    with pytest.raises(ManifestError, match="no benchmark manifest 'voc'"):
        load_benchmark_manifest("voc")


# ---------------------------------------------------------------- zero-shot training labels


@pytest.mark.parametrize("name,folds", [("pascal5i", 4), ("coco20i", 4)])
def test_unseen_classes_are_never_training_targets(name, folds):
    m = load_benchmark_manifest(name)
    for f in range(folds):
        split = others_label_split(m, f)
        lut = split.train_lut()
        unseen = m.fold_class_ids(f)
        assert split.unseen_names == [m.classes[c - 1] for c in unseen]
        assert split.seen_names[0] == "others" and len(split.seen) == len(m.classes) + 1 - len(unseen)
        # a mask holding background, every class and void: unseen pixels become ignore, the rest stay distinct
        mask = torch.tensor([0, *range(1, len(m.classes) + 1), 255])
        target = lut[mask]
        assert (target[unseen] == 255).all() and target[0] == 0 and target[-1] == 255
        kept = [c for c in range(1, len(m.classes) + 1) if c not in unseen]
        assert sorted(target[kept].tolist()) == list(range(1, len(kept) + 1))


# ---------------------------------------------------------------- episode determinism


def test_coco_episodes_are_seeded_and_follow_the_official_numpy_calls():
    lists = {c: [f"val2014/img_{c}_{j}.jpg" for j in range(3 + c % 5)] for c in range(1, 81)}
    classes = coco20i.fold_class_ids(2)
    a = coco20i.sample_episodes(lists, classes, 50, seed=0)
    assert a == coco20i.sample_episodes(lists, classes, 50, seed=0)
    assert a != coco20i.sample_episodes(lists, classes, 50, seed=1)
    assert {e.class_id for e in a} <= set(classes) and all(e.image_id in lists[e.class_id] for e in a)
    # the official loader after np.random.seed(0): choice over 0-based class ids, then over the class's list
    np.random.seed(0)
    official = []
    for _ in range(50):
        cls = np.random.choice([c - 1 for c in classes], 1, replace=False)[0]
        official.append((np.random.choice(lists[cls + 1], 1, replace=False)[0], cls + 1))
    assert [(e.image_id, e.class_id) for e in a] == official


def test_hsnet_pickles_are_read_without_running_code(tmp_path):
    good = tmp_path / "fold0.pkl"
    good.write_bytes(pickle.dumps({0: ["val2014/a.jpg"], 4: ["val2014/b.jpg", "val2014/c.jpg"]}))
    assert coco20i.read_classwise(good) == {1: ["val2014/a.jpg"], 5: ["val2014/b.jpg", "val2014/c.jpg"]}
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(ValueError, match="refusing to load collections.OrderedDict"):
        coco20i.read_classwise(evil)


def _real_shaped_pickles(folder: Path) -> dict[int, list[str]]:
    """Four HSNet val/fold<f>.pkl as the real ones are: all 80 class keys (0-based), lists empty outside the
    fold (fold f holds classes f, f+4, ..., 0-based)."""
    folder.mkdir(parents=True)
    want: dict[int, list[str]] = {}
    for f in range(4):
        data = {c: [] for c in range(80)}
        for c in range(f, 80, 4):
            data[c] = [f"val2014/COCO_val2014_{c:06d}{k}.jpg" for k in range(2)]
            want[c + 1] = data[c]
        (folder / f"fold{f}.pkl").write_bytes(pickle.dumps(data))
    return want


def test_hsnet_fold_pickles_merge_keeps_every_fold(tmp_path):
    # with dict.update the last fold's 80 keys (60 of them empty) emptied folds 0-2
    want = _real_shaped_pickles(tmp_path / "coco" / "val")
    merged = coco20i.read_hsnet_fold_pickles(tmp_path)
    assert merged == want
    for f in range(4):
        assert all(merged[c] for c in coco20i.fold_class_ids(f)), f"fold {f} lost its lists"


def test_hsnet_fold_pickles_refuse_conflicting_lists(tmp_path):
    _real_shaped_pickles(tmp_path / "coco" / "val")
    data = pickle.loads((tmp_path / "coco" / "val" / "fold3.pkl").read_bytes())
    data[0] = ["val2014/other.jpg"]  # class 1 also listed, differently, by fold 0
    (tmp_path / "coco" / "val" / "fold3.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match="list different images for class 1"):
        coco20i.read_hsnet_fold_pickles(tmp_path)


# ---------------------------------------------------------------- prepare: PASCAL-5i


def _voc(root: Path, ids: list[str], masks: str = "SegmentationClassAug") -> None:
    for d in ("JPEGImages", masks):
        (root / "VOC2012" / d).mkdir(parents=True, exist_ok=True)
    for i in ids:  # prepare checks presence only: empty files are enough
        (root / "VOC2012" / "JPEGImages" / f"{i}.jpg").touch()
        (root / "VOC2012" / masks / f"{i}.png").touch()


def test_prepare_pascal_names_what_is_missing(tmp_path):
    with pytest.raises(
        MissingDataError, match=r"PASCAL VOC root not found: .*nope does not exist.*VOCtrainval_11-May-2012"
    ):
        registry.prepare("pascal", tmp_path / "nope")
    _voc(tmp_path, [], masks="SegmentationClass")
    with pytest.raises(
        MissingDataError,
        match=r"SBD-augmented masks not found: .*SegmentationClassAug does not exist.*drive\.google",
    ):
        registry.prepare("pascal5i", tmp_path)
    shutil.rmtree(tmp_path / "VOC2012")
    _voc(tmp_path, [])
    with pytest.raises(
        MissingDataError, match=r"split lists not found: .*pascal/val/fold0\.txt.*juhongm999/hsnet"
    ):
        registry.prepare("pascal5i", tmp_path, splits=tmp_path / "no_splits")


def test_prepare_pascal_checks_published_lists_and_listed_files(tmp_path, ref):
    splits = tmp_path / "splits" / "pascal"
    shutil.copytree(ref / "splits" / "pascal", splits)
    val_ids = sorted(
        {e.image_id for f in range(4) for e in pascal5i.read_episodes(splits / "val" / f"fold{f}.txt")}
    )
    _voc(tmp_path, val_ids[:-1])
    with pytest.raises(
        MissingDataError, match=rf"1 of {len(val_ids)} images listed in val/fold\*\.txt.*{val_ids[-1]}\.jpg"
    ):
        registry.prepare("pascal5i", tmp_path)
    _voc(tmp_path, val_ids)
    # finds <root>/splits; absent trn images are reported, not fatal
    lines = registry.prepare("pascal5i", tmp_path)
    assert any(ln.startswith("val: 4 lists match") for ln in lines)
    assert any("needed only for training" in ln for ln in lines)
    (splits / "val" / "fold2.txt").write_text(
        (splits / "val" / "fold2.txt").read_text() + "2007_000033__11\n"
    )
    with pytest.raises(
        ValueError, match=r"fold2\.txt: sha256 .* differs from the published pascal/val/fold2\.txt"
    ):
        registry.prepare("pascal5i", tmp_path)


# ---------------------------------------------------------------- prepare: COCO-20i


def _coco_images(base: Path, n: int) -> None:
    (base / "val2014").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(base / "val2014" / f"COCO_val2014_{i:012d}.jpg")


def test_prepare_coco_in_place_indexes_masks_and_names_missing_ones(tmp_path):
    base = tmp_path / "COCO2014"
    with pytest.raises(MissingDataError, match=r"COCO 2014 images not found.*val2014\.zip"):
        registry.prepare("coco", tmp_path)
    _coco_images(base, 3)
    with pytest.raises(
        MissingDataError,
        match=r"val2014 masks not found: .*annotations/val2014 does not exist.*instances_val2014\.json",
    ):
        registry.prepare("coco", tmp_path)
    (base / "annotations" / "val2014").mkdir(parents=True)
    for i, cls in enumerate((3, 80)):
        mask = np.zeros((10, 12), np.uint8)
        mask[2:5, 2:5] = cls
        Image.fromarray(mask).save(base / "annotations" / "val2014" / f"COCO_val2014_{i:012d}.png")
    with pytest.raises(
        MissingDataError, match=r"1 of 3 val2014 masks not found: .*COCO_val2014_000000000002\.png"
    ):
        coco20i.prepare(tmp_path, progress=False)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(
        base / "annotations" / "val2014" / "COCO_val2014_000000000002.png"
    )
    out = tmp_path / "prepared"
    lines = coco20i.prepare(tmp_path, out=out, progress=False)
    assert "val2014: 3 images with masks (checked in place)" in lines
    index = coco20i.read_classwise(coco20i.default_classwise(out))
    assert index[3] == ["val2014/COCO_val2014_000000000000.jpg"] and index[80] == [
        "val2014/COCO_val2014_000000000001.jpg"
    ]
    assert (out / "val2014").is_symlink() and coco20i.find_coco(out) == out  # a root linking the data
    # HSNet's fold pickles (0-based class keys) become the preferred index, list order kept
    hsnet = tmp_path / "splits" / "coco" / "val"
    hsnet.mkdir(parents=True)
    order = ["val2014/COCO_val2014_000000000002.jpg", "val2014/COCO_val2014_000000000000.jpg"]
    for f in range(4):
        (hsnet / f"fold{f}.pkl").write_bytes(pickle.dumps({2: order} if f == 2 else {}))
    coco20i.prepare(tmp_path, out=out, splits=tmp_path / "splits", progress=False)
    assert coco20i.default_classwise(out).name == "hsnet_classwise_val2014.tsv"
    assert coco20i.read_classwise(coco20i.default_classwise(out)) == {3: order}
    (hsnet / "fold2.pkl").write_bytes(pickle.dumps({2: ["val2014/COCO_val2014_000000000009.jpg", *order]}))
    with pytest.raises(
        MissingDataError, match=r"1 images listed in HSNet's fold pickles not found: .*09\.jpg"
    ):
        coco20i.prepare(tmp_path, out=out, splits=tmp_path / "splits", progress=False)


def test_prepare_coco_converts_instances_json(tmp_path):
    pytest.importorskip("pycocotools", reason="COCO conversion needs the optional extra lseg_nb[coco]")
    base = tmp_path / "COCO2014"
    _coco_images(base, 2)
    cats = [{"id": cid, "name": f"c{cid}"} for cid in coco20i.manifest().category_ids]
    images = [
        {"id": i + 1, "file_name": f"COCO_val2014_{i:012d}.jpg", "height": 10, "width": 12} for i in range(2)
    ]
    anns = [
        # polygon of category 90 (toothbrush, class 80): the square x 2..6, y 1..5
        {"id": 1, "image_id": 1, "category_id": 90, "iscrowd": 0, "area": 16, "bbox": [2, 1, 4, 4],
         "segmentation": [[2, 1, 6, 1, 6, 5, 2, 5]]},
        # uncompressed RLE crowd region of category 1 (person, class 1): column-major runs, 10x12 image
        {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 1, "area": 20, "bbox": [0, 0, 2, 10],
         "segmentation": {"size": [10, 12], "counts": [0, 20, 100]}},
    ]  # fmt: skip
    (base / "annotations").mkdir()
    (base / "annotations" / "instances_val2014.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    out = tmp_path / "converted"
    coco20i.prepare(tmp_path, out=out, progress=False)
    m0 = np.array(Image.open(out / "annotations" / "val2014" / "COCO_val2014_000000000000.png"))
    m1 = np.array(Image.open(out / "annotations" / "val2014" / "COCO_val2014_000000000001.png"))
    assert m0[3, 4] == 80 and m0[0, 0] == 0 and m0[8, 10] == 0
    assert (m1[:, :2] == 1).all() and (m1[:, 2:] == 0).all()
    index = coco20i.read_classwise(coco20i.default_classwise(out))
    assert index[80] == ["val2014/COCO_val2014_000000000000.jpg"] and index[1] == [
        "val2014/COCO_val2014_000000000001.jpg"
    ]
    cats[0]["id"] = 12  # not the COCO 2014 category set
    (base / "annotations" / "instances_val2014.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": cats})
    )
    with pytest.raises(ValueError, match="are not the 80 COCO 2014 categories"):
        coco20i.prepare(tmp_path, out=tmp_path / "again", progress=False)


# ---------------------------------------------------------------- prepare: FSS-1000 and ADE20K


def test_prepare_fss_checks_every_test_class(tmp_path):
    names = fss1000.manifest().classes
    base = tmp_path / "FSS-1000"
    with pytest.raises(MissingDataError, match=r"FSS-1000 class folders not found.*drive\.google"):
        registry.prepare("fss", tmp_path)
    for c in fss1000.test_class_ids():
        (base / names[c - 1]).mkdir(parents=True)
        (base / names[c - 1] / "1.jpg").touch()
        (base / names[c - 1] / "1.png").touch()
    lines = registry.prepare("fss1000", tmp_path)
    assert "test: 240 classes, 240 images with masks (the official run: 2400)" in lines
    (base / names[900] / "1.png").unlink()
    with pytest.raises(MissingDataError, match=rf"1 FSS-1000 test masks not found: .*{names[900]}/1\.png"):
        registry.prepare("fss1000", tmp_path)
    shutil.rmtree(base / names[800])
    with pytest.raises(MissingDataError, match=rf"FSS-1000 class folder '{names[800]}' not found"):
        registry.prepare("fss1000", tmp_path)


def test_ade20k_adapter_and_prepare(tmp_path):
    with pytest.raises(MissingDataError, match=r"ADE20K not found.*ADEChallengeData2016\.zip"):
        registry.prepare("ade20k", tmp_path)
    base = tmp_path / "ADEChallengeData2016"
    (base / "images" / "validation").mkdir(parents=True)
    (base / "annotations" / "validation").mkdir(parents=True)
    Image.fromarray(np.full((4, 6, 3), 255, np.uint8)).save(
        base / "images" / "validation" / "ADE_val_00000001.jpg"
    )
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(
        base / "images" / "validation" / "ADE_val_00000002.jpg"
    )
    ann = np.array([[0, 1, 150, 7, 7, 7]] * 4, np.uint8)
    Image.fromarray(ann).save(base / "annotations" / "validation" / "ADE_val_00000001.png")
    with pytest.raises(
        MissingDataError, match=r"1 of 2 ADE20K validation annotations not found: .*ADE_val_00000002\.png"
    ):
        registry.prepare("ade20k150", tmp_path)
    Image.fromarray(ann).save(base / "annotations" / "validation" / "ADE_val_00000002.png")
    lines = registry.prepare("ade20k150", tmp_path)
    assert "validation: 2 images with annotations (the official release has 2000)" in lines
    ds = ade20k.ADE20KDataset(tmp_path, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    image, label = ds[0]
    assert image.shape == (3, 4, 6)
    assert torch.allclose(image, torch.ones_like(image), atol=1e-6)  # white: (1 - 0.5) / 0.5
    assert label[0].tolist() == [255, 0, 149, 6, 6, 6] and label.dtype == torch.int64
    assert len(ade20k.ade20k_labels()) == 150 and ade20k.ade20k_labels()[0] == "wall"


def test_registry_names_and_unknown_benchmark(tmp_path):
    assert registry.benchmark_name("PASCAL") == "pascal5i" and registry.benchmark_name("fss1000") == "fss1000"
    with pytest.raises(ValueError, match="unknown benchmark 'voc'"):
        registry.prepare("voc", tmp_path)
    with pytest.raises(ValueError, match="drop --out"):
        registry.prepare("fss", tmp_path, out=tmp_path / "o")
