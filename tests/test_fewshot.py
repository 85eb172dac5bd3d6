"""PASCAL-5i zero-shot protocol: episode lists, VOC reading, binary IoU bookkeeping (hand-computed answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lseg_nb.engine.fewshot import (
    Episode,
    binary_areas,
    class_target,
    episode_counts,
    evaluate_pascal5i,
    find_voc,
    fold_class_ids,
    hsnet_scores,
    read_episodes,
    read_label_names,
)

NAMES = [f"class{i}" for i in range(1, 21)]


def test_read_episodes_and_bad_lines(tmp_path):
    path = tmp_path / "fold0.txt"
    path.write_text("2007_000033__01\n2008_001234__05\n\n")
    assert read_episodes(path) == [Episode("2007_000033", 1), Episode("2008_001234", 5)]
    path.write_text("2007_000033__01\n2007_000033-01\n")
    with pytest.raises(ValueError, match=r"fold0\.txt:2: expected"):
        read_episodes(path)
    path.write_text("2007_000033__21\n")
    with pytest.raises(ValueError, match=r"fold0\.txt:1"):
        read_episodes(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_episodes(tmp_path / "missing.txt")


def test_fold_classes_and_labels(tmp_path):
    assert fold_class_ids(0) == [1, 2, 3, 4, 5] and fold_class_ids(3) == [16, 17, 18, 19, 20]
    with pytest.raises(ValueError, match="fold must be 0..3"):
        fold_class_ids(4)
    (tmp_path / "labels.txt").write_text("\n".join(NAMES[:19]))
    with pytest.raises(ValueError, match="has 19 label names"):
        read_label_names(tmp_path / "labels.txt")


def test_binary_areas_hand_computed():
    mask = torch.tensor([[0, 1, 1, 255], [2, 1, 0, 0], [1, 255, 2, 0]])
    target = class_target(mask, 1)
    assert target.tolist() == [[0, 1, 1, 255], [0, 1, 0, 0], [1, 255, 0, 0]]
    pred = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    inter, union = binary_areas(pred, target)
    # 10 scored pixels; fg: pred 5, gt 4, both 2 -> union 7; bg: pred 5, gt 6, both 3 -> union 8.
    assert inter.tolist() == [3, 2] and union.tolist() == [8, 7]


def test_hsnet_scores_hand_computed():
    inter, union = torch.zeros(2, 20, dtype=torch.long), torch.zeros(2, 20, dtype=torch.long)
    inter[1, :5] = torch.tensor([2, 0, 5, 4, 0])
    union[1, :5] = torch.tensor([7, 0, 10, 4, 3])
    inter[0, :5] = torch.tensor([3, 1, 1, 1, 1])
    union[0, :5] = torch.tensor([8, 1, 2, 3, 6])
    inter[:, 10], union[:, 10] = 50, 60  # another fold's class: must not count
    miou, fb = hsnet_scores(inter, union, [1, 2, 3, 4, 5])
    # empty union counts as IoU 0 (HSNet divides by max(union, 1))
    assert miou == pytest.approx((2 / 7 + 0 + 0.5 + 1 + 0) / 5 * 100)
    assert fb == pytest.approx((7 / 20 + 11 / 24) / 2 * 100)


def test_episode_counts():
    assert episode_counts(3) == {0: 1, 1: 1, 2: 1}  # official LSeg loader: min(1000, n) episodes
    assert episode_counts(3, num_episodes=1000) == {0: 334, 1: 333, 2: 333}  # original HSNet cycling
    assert episode_counts(1500) == {i: 1 for i in range(1000)}
    assert episode_counts(5, max_episodes=2) == {0: 1, 1: 1}


def _fake_voc(root: Path, masks_dir: str = "SegmentationClassAug") -> Path:
    """Two 40x30 images; masks with classes 1, 2, 3 and a 255 boundary."""
    base = root / "VOC2012"
    (base / "JPEGImages").mkdir(parents=True)
    (base / masks_dir).mkdir()
    rng = np.random.default_rng(0)
    for name, classes in (("img_a", (1, 2)), ("img_b", (3, 1))):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{name}.jpg"
        )
        mask = np.zeros((30, 40), np.uint8)
        mask[5:20, 4:25] = classes[0]
        mask[18:28, 20:38] = classes[1]
        mask[4, 3:26] = 255
        Image.fromarray(mask).save(base / masks_dir / f"{name}.png")
    split = root / "splits"
    split.mkdir()
    (split / "fold0.txt").write_text("img_a__01\nimg_b__03\nimg_a__02\n")
    (root / "labels.txt").write_text("\n".join(NAMES) + "\n")
    return base


def test_find_voc_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_voc(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="JPEGImages/ and SegmentationClassAug/"):
        find_voc(tmp_path)
    base = _fake_voc(tmp_path / "a", masks_dir="SegmentationClass")
    assert find_voc(tmp_path / "a") == (base / "JPEGImages", base / "SegmentationClass")
    assert find_voc(base)[0] == base / "JPEGImages"


def _expected(model, base: Path, episodes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent bookkeeping in numpy: per-class background/foreground intersection and union."""
    inter, union = np.zeros((2, 20)), np.zeros((2, 20))
    mean, std = np.array(model.config.mean), np.array(model.config.std)
    for image_id, cls in episodes:
        rgb = (
            Image.open(base / "JPEGImages" / f"{image_id}.jpg")
            .convert("RGB")
            .resize((size, size), Image.BILINEAR)
        )
        x = (np.asarray(rgb, np.float32) / 255 - mean) / std
        x = torch.from_numpy(x.transpose(2, 0, 1)).float()[None]
        with torch.no_grad():
            pred = model(x, model.encode_text(["others", NAMES[cls - 1]])).argmax(1)[0].numpy()
        mask = np.array(Image.open(base / "SegmentationClassAug" / f"{image_id}.png"))
        rows = np.floor(np.arange(size) * mask.shape[0] / size).astype(int)
        cols = np.floor(np.arange(size) * mask.shape[1] / size).astype(int)
        mask = mask[rows][:, cols]
        valid = mask != 255
        gt = (mask == cls).astype(int)
        for k in (0, 1):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k, cls - 1] += (p & g).sum()
            union[k, cls - 1] += (p | g).sum()
    return inter, union


def test_evaluate_pascal5i_matches_independent_bookkeeping(tmp_path, tiny_model):
    base = _fake_voc(tmp_path)
    result = evaluate_pascal5i(
        tiny_model, tmp_path, 0, tmp_path / "splits", tmp_path / "labels.txt", image_size=64
    )
    inter, union = _expected(tiny_model, base, [("img_a", 1), ("img_b", 3), ("img_a", 2)], 64)
    assert np.array_equal(np.array(result["intersection"]), inter)
    assert np.array_equal(np.array(result["union"]), union)
    fg = inter[1, :5] / np.maximum(union[1, :5], 1)
    assert result["miou"] == pytest.approx(fg.mean() * 100)
    assert result["fb_iou"] == pytest.approx((inter[:, :5].sum(1) / union[:, :5].sum(1)).mean() * 100)
    assert result["per_class_iou"]["class3"] == pytest.approx(fg[2] * 100)
    assert result["episodes_per_class"] == {"class1": 1, "class2": 1, "class3": 1, "class4": 0, "class5": 0}
    assert result["num_episodes"] == 3 and union[1, :3].min() > 0
    limited = evaluate_pascal5i(tiny_model, tmp_path, 0, tmp_path / "splits", tmp_path / "labels.txt", 1, 64)
    assert limited["num_episodes"] == 1 and limited["intersection"][1][2] == 0


def test_evaluate_pascal5i_clear_errors(tmp_path, tiny_model):
    _fake_voc(tmp_path)
    args = (tmp_path / "splits", tmp_path / "labels.txt")
    (tmp_path / "splits" / "fold1.txt").write_text("img_a__01\n")
    with pytest.raises(ValueError, match="outside fold 1"):
        evaluate_pascal5i(tiny_model, tmp_path, 1, *args, image_size=64)
    (tmp_path / "splits" / "fold0.txt").write_text("img_zz__02\n")
    with pytest.raises(FileNotFoundError, match=r"episode img_zz__02: .*img_zz\.jpg does not exist"):
        evaluate_pascal5i(tiny_model, tmp_path, 0, *args, image_size=64)
    with pytest.raises(FileNotFoundError, match="no PASCAL VOC layout"):
        evaluate_pascal5i(tiny_model, tmp_path / "splits", 0, *args, image_size=64)
