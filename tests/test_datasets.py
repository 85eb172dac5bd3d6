"""SegmentationDataset on a tiny hand-written dataset and on the shared MSRC-v2 set."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lseg_nb.data.datasets import SegmentationDataset, read_split_ids
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


@pytest.mark.parametrize(
    ("lines", "line_no", "message"),
    [
        ("a\nb\n# c is next\na\n", 4, "'a' is listed again (first on line 1)"),
        ("a\n../../secret\n", 2, "'../../secret' must be a path relative to the data root"),
        ("a\nsub/../../x\n", 2, "'sub/../../x' must be a path relative"),
        ("/etc/passwd\n", 1, "'/etc/passwd' must be a path relative"),
        ("a\n..\\..\\x\n", 2, "must be a path relative"),
        ("C:\\data\\x\n", 1, "must be a path relative"),
    ],
    ids=["duplicate", "dotdot", "nested-dotdot", "absolute", "backslash-dotdot", "drive"],
)
def test_bad_split_ids_are_refused_naming_file_and_line(tiny, lines, line_no, message):
    root, manifest = tiny
    (root / "splits" / "train.txt").write_text(lines)
    where = re.escape(f"{root / 'splits' / 'train.txt'}:{line_no}: image id")
    with pytest.raises(ValueError, match=where + ".*" + re.escape(message)):
        SegmentationDataset(root, manifest, "train")


def test_split_ids_may_name_subfolders_and_comments(tiny):
    root, manifest = tiny
    (root / "images" / "sub").mkdir()
    (root / "splits" / "train.txt").write_text("# header\na  # first\n\n  sub/b..v2\n")
    assert read_split_ids(root / "splits" / "train.txt") == ["a", "sub/b..v2"]


def test_16_bit_images_and_truncated_labels_in_a_dataset(tiny):
    root, manifest = tiny
    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(deep).save(root / "images" / "a.png")
    ds = SegmentationDataset(root, manifest, "train")
    image, _ = ds[0]
    expected = torch.from_numpy(np.round(deep / 65535 * 255)).float() / 255
    torch.testing.assert_close(image, expected.expand(3, 4, 5))  # scaled, not clipped to white
    data = (root / "labels" / "b.png").read_bytes()
    (root / "labels" / "b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"label of id 'b' .*labels/b\.png is not a readable image"):
        ds[1]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    ids=st.lists(
        st.from_regex(
            r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,10})?", fullmatch=True
        ),
        max_size=12,
    ),
    noise=st.lists(st.sampled_from(["", "   ", "# a comment", "  # indented comment"]), max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_parsing_property(tmp_path_factory, ids, noise, seed):
    """Any list of plain ids, mixed with blank and comment lines in any order, reads back as the unique ids in
    order; a repeated id is refused at the line that repeats it."""
    ids = [i for i in ids if ".." not in i.split("/")]
    rng = np.random.default_rng(seed)
    lines = list(ids)
    for extra in noise:
        lines.insert(int(rng.integers(0, len(lines) + 1)), extra)
    path = tmp_path_factory.mktemp("split") / "split.txt"
    path.write_text("\n".join(lines) + "\n")
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if line in ids and line in seen:
            with pytest.raises(ValueError, match=re.escape(f"{path}:{n}: image id {line!r} is listed again")):
                read_split_ids(path)
            return
        seen.setdefault(line, n)
    assert read_split_ids(path) == ids


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


def test_fold_by_name_or_index(tiny):
    from lseg_nb.apps.cli_args import parse_args
    from lseg_nb.config import DataConfig, TrainConfig
    from lseg_nb.data.experiment import make_experiment
    from lseg_nb.data.manifests import ManifestError

    root, manifest = tiny
    folds = [{"name": "no_grass", "unseen": ["grass"]}, {"name": "no_cow", "unseen": ["cow"]}]
    manifest.write_text(yaml.safe_dump({**MANIFEST, "zero_shot_folds": folds}))
    (root / "splits" / "val.txt").write_text("a\n")

    def labels(fold):
        return make_experiment(DataConfig(dataset=str(manifest), data_root=str(root), fold=fold)).labels

    assert labels("no_cow") == labels(1)
    assert labels("no_cow").unseen == (2,) and labels("no_cow").seen == (0, 1)
    with pytest.raises(
        ManifestError, match=r"no zero-shot fold 'cows'; folds are 0\.\.1 = \['no_grass', 'no_cow'\]"
    ):
        labels("cows")
    # the command line takes both: a number is the index, anything else a name
    assert parse_args(TrainConfig, ["--data.fold", "no_cow"], "t").data.fold == "no_cow"
    assert parse_args(TrainConfig, ["--data.fold", "1"], "t").data.fold == 1


def test_benchmark_fold_by_name():
    from lseg_nb.config import DataConfig
    from lseg_nb.data.benchmarks.training import benchmark_data
    from lseg_nb.utils.errors import InputError

    def data(fold):
        return benchmark_data(DataConfig(dataset="pascal5i", data_root="/nonexistent", fold=fold))

    by_name = data("fold1")
    assert by_name.fold == 1 and by_name.labels == data(1).labels
    with pytest.raises(InputError, match=r"has no fold 'fold9'; its folds are 0\.\.3 = \['fold0', 'fold1'"):
        data("fold9")
