"""SegmentationDataset on a tiny hand-written dataset and on the shared MSRC-v2 set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lseg_nb.data.datasets import SegmentationDataset
from lseg_nb.data.manifests import load_manifest
from lseg_nb.data.transforms import Normalize

MANIFEST = {
    "name": "tiny",
    "source_url": "https://example.org/tiny",
    "licence": "test data",
    "layout": {"classes_file": "classes.txt"},
    "classes": ["sky", "grass", "cow"],
    "splits": {"train": {"file": "splits/train.txt"}, "val": {"file": "splits/val.txt"}},
}


def rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, 5, 3), dtype=np.uint8)


LABEL = np.array([[0, 1, 2, 255, 0]] * 4, dtype=np.uint8)


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "tiny"
    for sub in ("images", "labels", "splits"):
        (root / sub).mkdir(parents=True)
    (root / "classes.txt").write_text("sky\ngrass\ncow\n")
    for i, id_ in enumerate(["a", "b", "c"]):
        Image.fromarray(rgb(i)).save(root / "images" / f"{id_}.png")
        Image.fromarray(LABEL).save(root / "labels" / f"{id_}.png")
    (root / "splits" / "train.txt").write_text("a\nb\n\nc\n")
    manifest = tmp_path / "tiny.yaml"
    manifest.write_text(yaml.safe_dump(MANIFEST))
    return root, manifest


def test_items_have_expected_values(tiny):
    root, manifest = tiny
    ds = SegmentationDataset(root, manifest, "train")
    assert ds.ids == ["a", "b", "c"] and len(ds) == 3
    assert ds.class_names == ["sky", "grass", "cow"] and ds.ignore_index == 255 and ds.root == root
    image, label = ds[1]
    assert image.dtype == torch.float32 and image.shape == (3, 4, 5)
    assert label.dtype == torch.int64 and label.shape == (4, 5)
    torch.testing.assert_close(image, torch.from_numpy(rgb(1)).permute(2, 0, 1).float() / 255)
    assert torch.equal(label, torch.from_numpy(LABEL.astype(np.int64)))
    assert ds.image_path(0) == root / "images" / "a.png"
    assert np.array_equal(np.array(ds.raw_image(2)), rgb(2))
    assert len(SegmentationDataset(root, manifest, "train", max_images=2)) == 2


def test_transform_is_applied(tiny):
    root, manifest = tiny
    ds = SegmentationDataset(
        root, load_manifest(manifest), "train", transform=Normalize((0.5,) * 3, (0.5,) * 3)
    )
    image, label = ds[0]
    torch.testing.assert_close(image, torch.from_numpy(rgb(0)).permute(2, 0, 1).float() / 127.5 - 1)
    assert label[0].tolist() == [0, 1, 2, 255, 0]


def test_missing_split_and_unknown_split(tiny):
    root, manifest = tiny
    with pytest.raises(FileNotFoundError, match=r"splits/val.txt for split 'val'"):
        SegmentationDataset(root, manifest, "val")
    with pytest.raises(ValueError, match=r"no split 'test'; available splits: \['train', 'val'\]"):
        SegmentationDataset(root, manifest, "test")


def test_missing_files_name_id_and_path(tiny):
    root, manifest = tiny
    ds = SegmentationDataset(root, manifest, "train")
    (root / "images" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image for id 'b'.*images/b.png does not exist"):
        ds[1]
    (root / "labels" / "c.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"label for id 'c'.*labels/c.png"):
        ds[2]
    assert ds[0][1].shape == (4, 5)  # errors are per item: good items still load


def test_bad_labels_are_reported(tiny):
    root, manifest = tiny
    ds = SegmentationDataset(root, manifest, "train")
    bad = LABEL.copy()
    bad[0, 0], bad[1, 1] = 7, 3
    Image.fromarray(bad).save(root / "labels" / "a.png")
    with pytest.raises(ValueError, match=r"labels/a.png \(id 'a'\) has values \[3, 7\] outside 0..2"):
        ds[0]
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(root / "labels" / "b.png")
    with pytest.raises(ValueError, match="b.png has mode RGB; expected a single-channel"):
        ds[1]
    Image.fromarray(np.zeros((3, 5), np.uint8)).save(root / "labels" / "c.png")
    with pytest.raises(ValueError, match="id 'c': image .* is 4x5 but label .* is 3x5"):
        ds[2]


@pytest.mark.shared
def test_msrc_items(msrc_root):
    ds = SegmentationDataset(msrc_root, "msrc_v2", "val", max_images=2)
    assert len(ds.class_names) == 23 and ds.class_names[0] == "building" and ds.ignore_index == 255
    for i in range(2):
        image, label = ds[i]
        assert image.shape[0] == 3 and image.shape[1:] == label.shape
        assert 0.0 <= image.min() and image.max() <= 1.0
        values = set(label.unique().tolist())
        assert values <= set(range(23)) | {255} and values - {255}
    assert len(SegmentationDataset(msrc_root, "msrc_v2", "train")) == 295
    assert ds.manifest.verify_splits(msrc_root)["val"] == ds.manifest.split("val").sha256
