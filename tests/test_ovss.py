"""The open-vocabulary suites' datasets (issue 17): class lists equal to the reference files, several names per
class, label maps (reduce-zero-label, 255, 16-bit TIFF voids, train ids), image lists in the reference loaders'
order, clear errors, and the suite runner end to end on tiny fixtures written in each dataset's prepared layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lseg_nb.config.suites import SUITES
from lseg_nb.data.benchmarks import ovss, registry
from lseg_nb.data.benchmarks.base import MissingDataError
from lseg_nb.data.manifests import shared_dir
from lseg_nb.engine.suite import DATASETS, SuiteConfig, run_suite

OVSS = shared_dir() / "reference" / "ovss"
pytestmark = pytest.mark.skipif(not OVSS.is_dir(), reason="needs ../shared/reference/ovss (LSEG_NB_SHARED)")

# Where each prepared layout puts one image and its label, written out by hand from the reference configs and
# preparation scripts (not from lseg_nb's manifests): (image path, label path) relative to --root.
LAYOUTS = {
    "sclip_voc21": ("VOCdevkit/VOC2012/JPEGImages/{i}.jpg", "VOCdevkit/VOC2012/SegmentationClass/{i}.png"),
    "sclip_voc20": ("VOCdevkit/VOC2012/JPEGImages/{i}.jpg", "VOCdevkit/VOC2012/SegmentationClass/{i}.png"),
    "sclip_context60": (
        "VOCdevkit/VOC2010/JPEGImages/{i}.jpg",
        "VOCdevkit/VOC2010/SegmentationClassContext/{i}.png",
    ),
    "sclip_context59": (
        "VOCdevkit/VOC2010/JPEGImages/{i}.jpg",
        "VOCdevkit/VOC2010/SegmentationClassContext/{i}.png",
    ),
    "sclip_coco_object": (
        "coco_stuff164k/images/val2017/{i}.jpg",
        "coco_stuff164k/annotations/val2017/{i}_instanceTrainIds.png",
    ),
    "sclip_coco_stuff164k": (
        "coco_stuff164k/images/val2017/{i}.jpg",
        "coco_stuff164k/annotations/val2017/{i}_labelTrainIds.png",
    ),
    "sclip_cityscapes": (
        "cityscapes/leftImg8bit/val/{i}_leftImg8bit.png",
        "cityscapes/gtFine/val/{i}_gtFine_labelTrainIds.png",
    ),
    "sclip_ade20k": (
        "ADEChallengeData2016/images/validation/{i}.jpg",
        "ADEChallengeData2016/annotations/validation/{i}.png",
    ),
    "catseg_ade847": (
        "ADE20K_2021_17_01/images_detectron2/validation/{i}.jpg",
        "ADE20K_2021_17_01/annotations_detectron2/validation/{i}.tif",
    ),
    "catseg_pc459": (
        "VOCdevkit/VOC2010/JPEGImages/{i}.jpg",
        "VOCdevkit/VOC2010/annotations_detectron2/pc459_val/{i}.tif",
    ),
    "catseg_ade150": (
        "ADEChallengeData2016/images/validation/{i}.jpg",
        "ADEChallengeData2016/annotations_detectron2/validation/{i}.png",
    ),
    "catseg_pc59": (
        "VOCdevkit/VOC2010/JPEGImages/{i}.jpg",
        "VOCdevkit/VOC2010/annotations_detectron2/pc59_val/{i}.png",
    ),
    "catseg_voc20": (
        "VOCdevkit/VOC2012/JPEGImages/{i}.jpg",
        "VOCdevkit/VOC2012/annotations_detectron2/val/{i}.png",
    ),
    "catseg_voc20b": (
        "VOCdevkit/VOC2012/JPEGImages/{i}.jpg",
        "VOCdevkit/VOC2012/annotations_detectron2_bg/val/{i}.png",
    ),
}
SPLIT_FILES = {
    "sclip_voc21": "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt",
    "sclip_voc20": "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt",
    "sclip_context60": "VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt",
    "sclip_context59": "VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt",
}
IDS = {"sclip_cityscapes": ["lindau/lindau_000001_000019", "frankfurt/frankfurt_000000_000294"]}


def _write(root: Path, name: str, ids: list[str], label_of) -> None:
    image_t, label_t = LAYOUTS[name]
    rng = np.random.default_rng(len(name))
    for i in ids:
        img, lab = root / image_t.format(i=i), root / label_t.format(i=i)
        img.parent.mkdir(parents=True, exist_ok=True)
        lab.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(img)
        Image.fromarray(label_of(i)).save(lab)
    if name in SPLIT_FILES:
        split = root / SPLIT_FILES[name]
        split.parent.mkdir(parents=True, exist_ok=True)
        split.write_text("".join(f"{i}\n" for i in ids))


def _label(num_classes: int, void: int, dtype=np.uint8, offset: int = 0):
    def make(_: str) -> np.ndarray:
        lab = np.zeros((20, 28), dtype)
        lab[:, :7] = offset  # class 0 (or the value that becomes class 0)
        lab[:, 7:14] = offset + num_classes - 1
        lab[:, 14:21] = void
        lab[:, 21:] = offset + 1
        return lab

    return make


def _fixture(root: Path, name: str) -> None:
    m = ovss.load_ovss_manifest(name)
    reduce = m.layout.label_map == "reduce_zero_label"
    dtype = np.uint16 if m.layout.label_suffix == ".tif" else np.uint8
    void = 0 if reduce else m.layout.void
    _write(root, name, IDS.get(name, ["b_0002", "a_0001"]), _label(m.num_classes, void, dtype, int(reduce)))


# ---------------------------------------------------------------- manifests and class lists


def test_every_suite_benchmark_has_a_manifest_and_the_reference_classes():
    for (suite, bench), name in DATASETS.items():
        m = ovss.load_ovss_manifest(name)
        assert (m.suite, m.benchmark) == (suite, bench)
        assert m.num_classes == SUITES[suite].benchmark(bench).num_classes
        labels, info = ovss.ovss_label_split(m)
        assert labels.num_classes == m.num_classes and info["classes_match_reference"], name
    assert sorted(DATASETS.values()) == [
        n for n in ovss.ovss_names() if n != "catseg_coco_stuff"
    ]  # + training set


def test_several_names_per_class_as_the_reference_files():
    voc21, _ = ovss.ovss_label_split(ovss.load_ovss_manifest("sclip_voc21"))
    first = (OVSS / "trainingfree/cls/cls_voc21.txt").read_text().splitlines()[0]
    assert voc21.names[0] == tuple(n.strip() for n in first.split(",")) and len(voc21.names[0]) > 10
    assert voc21.names[1] == ("aeroplane",) and voc21.background == 0
    # COCO-Object's background line also lists "bed", the name of class 60: allowed as in the reference
    obj, _ = ovss.ovss_label_split(ovss.load_ovss_manifest("sclip_coco_object"))
    assert "bed" in obj.names[0] and obj.shared_names
    # CAT-Seg: first name of an entry "a, b"; VOC20b's 39 extra texts name the background class 20
    a847, _ = ovss.ovss_label_split(ovss.load_ovss_manifest("catseg_ade847"))
    assert a847.names[1] == ("building",) and a847.void == 847
    b, _ = ovss.ovss_label_split(ovss.load_ovss_manifest("catseg_voc20b"))
    texts = json.loads((OVSS / "crossdataset/voc20b.json").read_text())
    assert (
        b.num_classes == 21 and b.background == 20 and b.names[20] == tuple(texts[20:]) and len(texts) == 59
    )


def test_a_bad_manifest_names_the_field(tmp_path):
    data = {"name": "x"}
    with pytest.raises(ValueError, match="missing field"):
        ovss.parse_ovss_manifest(data, tmp_path / "x.yaml")


# ---------------------------------------------------------------- label maps and image lists


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_reads_its_label_map(tmp_path, name):
    _fixture(tmp_path, name)
    lines = registry.prepare(name, tmp_path)
    assert any("2 images with labels" in line for line in lines), lines
    m = ovss.load_ovss_manifest(name)
    labels, _ = ovss.ovss_label_split(m)
    base = ovss.find_base(m, tmp_path)
    ds = ovss.OvssDataset(m, base, int(labels.void), lambda rgb, lab: (rgb, lab))
    rgb, lab = ds[0]
    assert (rgb.height, rgb.width) == lab.shape == (20, 28)
    want = np.zeros((20, 28), np.int64)
    want[:, 7:14], want[:, 14:21], want[:, 21:] = m.num_classes - 1, labels.void, 1
    np.testing.assert_array_equal(lab, want)


def test_reduce_zero_label_is_mmsegs(tmp_path):
    m = ovss.load_ovss_manifest("sclip_context59")
    path = tmp_path / "l.png"
    Image.fromarray(np.array([[0, 1, 59, 255]], np.uint8)).save(path)
    np.testing.assert_array_equal(ovss.read_label(m, path, 255), [[255, 0, 58, 255]])
    m60 = ovss.load_ovss_manifest("sclip_context60")  # same files, background scored
    np.testing.assert_array_equal(ovss.read_label(m60, path, 255), [[0, 1, 59, 255]])


def test_sixteen_bit_voids_become_the_split_void(tmp_path):
    m = ovss.load_ovss_manifest("catseg_ade847")
    path = tmp_path / "l.tif"
    Image.fromarray(np.array([[0, 846, 65535, 300]], np.uint16)).save(path)
    np.testing.assert_array_equal(ovss.read_label(m, path, 847), [[0, 846, 847, 300]])


def test_another_label_encoding_is_refused_naming_the_file(tmp_path):
    m = ovss.load_ovss_manifest("sclip_cityscapes")
    path = tmp_path / "x_gtFine_labelTrainIds.png"
    Image.fromarray(np.array([[7, 26, 33]], np.uint8)).save(path)  # labelIds, not train ids
    with pytest.raises(ValueError, match=r"x_gtFine_labelTrainIds\.png holds values \[26, 33\]"):
        ovss.read_label(m, path, 255)


def test_image_lists_follow_the_reference_loaders(tmp_path):
    # mmseg without ann_file: every image under the folder, recursively, sorted by path
    _fixture(tmp_path, "sclip_cityscapes")
    m = ovss.load_ovss_manifest("sclip_cityscapes")
    ids = ovss.list_ids(m, ovss.find_base(m, tmp_path))
    assert ids == ["frankfurt/frankfurt_000000_000294", "lindau/lindau_000001_000019"]
    # mmseg with ann_file: the list's order
    _fixture(tmp_path, "sclip_voc21")
    m = ovss.load_ovss_manifest("sclip_voc21")
    assert ovss.list_ids(m, ovss.find_base(m, tmp_path)) == ["b_0002", "a_0001"]
    # detectron2 load_sem_seg: one item per ground-truth file (an image without one is not scored)
    _fixture(tmp_path, "catseg_voc20")
    Image.new("RGB", (28, 20)).save(tmp_path / "VOCdevkit/VOC2012/JPEGImages/c_0003.jpg")
    m = ovss.load_ovss_manifest("catseg_voc20")
    assert ovss.list_ids(m, ovss.find_base(m, tmp_path)) == ["a_0001", "b_0002"]


def test_missing_data_names_the_folder_and_the_script(tmp_path):
    with pytest.raises(MissingDataError, match=r"prepare_ade20k_full\.py"):
        registry.prepare("catseg_ade847", tmp_path)
    _fixture(tmp_path, "sclip_voc21")
    (tmp_path / "VOCdevkit/VOC2012/SegmentationClass/a_0001.png").unlink()
    with pytest.raises(
        MissingDataError, match=r"label of a_0001 \(item 2 of 2\).*a_0001\.png does not exist"
    ):
        registry.prepare("sclip_voc21", tmp_path)


# ---------------------------------------------------------------- the suites end to end


def test_crossdataset_suite_runs_every_dataset_with_an_average(tmp_path, tiny_model):
    for (suite, _), name in DATASETS.items():
        if suite == "crossdataset":
            _fixture(tmp_path, name)
    # a small short side keeps the tiny images' 847 / 459-class logits small (each row notes the change)
    config = SuiteConfig(suite="crossdataset", root=str(tmp_path), eval={"short_side": 32})
    result = run_suite(tiny_model, config, "tiny", progress=False)
    assert all(any("short_side" in n for n in r.notes) for r in result.rows)
    assert [r.benchmark.name for r in result.rows] == list(SUITES["crossdataset"].datasets)
    assert result.average is not None
    assert result.average == pytest.approx(np.mean([r.miou for r in result.rows]))
    assert all(0 <= r.miou <= 1 for r in result.rows)


def test_trainingfree_suite_runs_one_dataset_alone(tmp_path, tiny_model):
    _fixture(tmp_path, "sclip_voc21")
    config = SuiteConfig(suite="trainingfree", root=str(tmp_path), harness="sclip", only=("voc21",))
    result = run_suite(tiny_model, config, "tiny", progress=False)
    (row,) = result.rows
    assert row.benchmark.name == "voc21" and row.dataset == "sclip_voc21" and result.average is None


def test_coco_object_conversion_follows_cvt_coco_object(tmp_path):
    # GroupViT/SCLIP cvt_coco_object.py: thing id-1 -> position+1, stuff (91..181) -> 0, and 255 -> 0 as well
    from lseg_nb.data.benchmarks.ovss_convert import convert_stuff_map

    stuff = np.array(
        [[0, 10, 12, 89, 91, 181, 255]], np.uint8
    )  # person, traffic light, stop sign, toothbrush
    np.testing.assert_array_equal(convert_stuff_map(stuff), [[1, 11, 12, 80, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"values \[11\] are no COCO-Stuff class"):
        convert_stuff_map(np.array([[11]], np.uint8))  # COCO id 12 is not a thing category
    base = tmp_path / "coco_stuff164k"
    (base / "images/val2017").mkdir(parents=True)
    (base / "annotations/val2017").mkdir(parents=True)
    Image.new("RGB", (7, 1)).save(base / "images/val2017/000000000139.jpg")
    Image.fromarray(stuff).save(base / "annotations/val2017/000000000139.png")
    with pytest.raises(ValueError, match="--out equal to --root"):
        registry.prepare("sclip_coco_object", tmp_path, out=tmp_path / "elsewhere")
    lines = registry.prepare("sclip_coco_object", tmp_path, out=tmp_path)
    assert "1 written" in lines[0] and any("1 images with labels" in line for line in lines)
    written = np.array(Image.open(base / "annotations/val2017/000000000139_instanceTrainIds.png"))
    np.testing.assert_array_equal(written, [[1, 11, 12, 80, 0, 0, 0]])


def test_coco_stuff_training_set_serves_train_and_val(tmp_path, tiny_model):
    from lseg_nb.config import DataConfig, get_recipe
    from lseg_nb.data.experiment import make_experiment

    rng = np.random.default_rng(0)
    for split, ids in (("train2017", ["t1", "t2"]), ("val2017", ["v1"])):
        for i in ids:
            img = tmp_path / "coco-stuff" / "images" / split / f"{i}.jpg"
            lab = tmp_path / "coco-stuff" / "annotations_detectron2" / split / f"{i}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            lab.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(img)
            Image.fromarray(
                np.where(rng.random((40, 48)) < 0.1, 255, rng.integers(0, 171, (40, 48))).astype(np.uint8)
            ).save(lab)
    recipe = get_recipe("lseg_vitl16_coco_stuff171")
    data = DataConfig(dataset=recipe.data.dataset, data_root=str(tmp_path), fold=None, scale_range=(1.0, 1.0))
    exp = make_experiment(data)
    assert exp.labels.num_classes == 171 and exp.labels.names[0] == ("person",)
    train = exp.dataset("train", tiny_model.config, data, train=True)
    image, label = train[0][:2]
    assert len(train) == 2 and image.shape[-2:] == label.shape == (tiny_model.config.crop_size,) * 2
    assert set(label.unique().tolist()) <= set(range(171)) | {255}
    val = exp.dataset("val", tiny_model.config, data)
    assert len(val) == 1
    with pytest.raises(ValueError, match="has no 'trainval' split"):
        exp.dataset("trainval", tiny_model.config, data)
    with pytest.raises(ValueError, match="an evaluation set"):
        ovss.load_ovss_manifest("sclip_voc21").for_split("train")


def test_suite_datasets_take_no_split_lists(tmp_path):
    with pytest.raises(ValueError, match="takes no --splits"):
        registry.prepare("sclip_voc21", tmp_path, splits=tmp_path)
