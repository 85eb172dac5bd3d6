"""Benchmark protocols: episodic zero-shot bookkeeping (hand-computed answers), PASCAL-5i / COCO-20i / FSS-1000
through one loop, the generalised setting and ADE20K-150 fixed-label evaluation, on fixtures written by the tests."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lseg_nb.config import OFFICIAL_EVAL, DataConfig, EvalConfig
from lseg_nb.data.benchmarks import coco20i, fss1000, pascal5i
from lseg_nb.data.benchmarks.base import (
    Episode,
    EpisodeSource,
    class_target,
    cycle_episodes,
    read_label_file,
    resize_labels,
)
from lseg_nb.engine.episodic import (
    binary_areas,
    generalised,
    generalised_data,
    hsnet_scores,
    load_episode,
    run_episodes,
)
from lseg_nb.engine.evaluate import evaluate
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.metrics import confusion_matrix
from lseg_nb.engine.results import EpisodicResult
from tests.conftest import with_crop


def ep(model, source, size: int, max_episodes: int | None = None, **protocol) -> EpisodicResult:
    """The episodic protocol at ``size`` x ``size`` (no intervals: faster)."""
    cfg = EvalConfig(protocol="episodic", episode_size=size, bootstrap=0, **protocol)
    return run_episodes(model, source, cfg, max_episodes, progress=False)


def pascal(model, root, fold, split_dir, labels_file=None, max_episodes=None, size=64) -> EpisodicResult:
    return ep(model, pascal5i.episode_source(root, fold, split_dir, labels_file), size, max_episodes)


NAMES = [f"class{i}" for i in range(1, 21)]


def test_read_episodes_and_bad_lines(tmp_path):
    path = tmp_path / "fold0.txt"
    path.write_text("2007_000033__01\n2008_001234__05\n\n")
    assert pascal5i.read_episodes(path) == [Episode("2007_000033", 1), Episode("2008_001234", 5)]
    path.write_text("2007_000033__01\n2007_000033-01\n")
    with pytest.raises(ValueError, match=r"fold0\.txt:2: expected"):
        pascal5i.read_episodes(path)
    path.write_text("2007_000033__21\n")
    with pytest.raises(ValueError, match=r"fold0\.txt:1"):
        pascal5i.read_episodes(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        pascal5i.read_episodes(tmp_path / "missing.txt")


def test_fold_classes_and_labels(tmp_path):
    assert pascal5i.fold_class_ids(0) == [1, 2, 3, 4, 5] and pascal5i.fold_class_ids(3) == [
        16,
        17,
        18,
        19,
        20,
    ]
    with pytest.raises(ValueError, match="fold must be 0..3"):
        pascal5i.fold_class_ids(4)
    (tmp_path / "labels.txt").write_text("\n".join(NAMES[:19]))
    with pytest.raises(ValueError, match="has 19 label names"):
        read_label_file(tmp_path / "labels.txt", pascal5i.manifest())


def test_binary_areas_hand_computed():
    mask = torch.tensor([[0, 1, 1, 255], [2, 1, 0, 0], [1, 255, 2, 0]])
    target = class_target(mask, 1)
    assert target.tolist() == [[0, 1, 1, 255], [0, 1, 0, 0], [1, 255, 0, 0]]
    pred = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    inter, union = binary_areas(pred, target)
    # 10 scored pixels; fg: pred 5, gt 4, both 2 -> union 7; bg: pred 5, gt 6, both 3 -> union 8.
    assert inter.tolist() == [3, 2] and union.tolist() == [8, 7]
    # a batch of episodes: one row of areas per episode
    # (an all-background prediction: bg I 6 U 10, fg I 0 U 4)
    inter2, union2 = binary_areas(torch.stack([pred, pred * 0]), torch.stack([target, target]))
    assert inter2.tolist() == [[3, 2], [6, 0]] and union2.tolist() == [[8, 7], [10, 4]]


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


def test_cycle_episodes():
    eps = [Episode(f"im{i}", 1) for i in range(3)]
    # official HSNet/LSeg loader: 1000 episodes on the test split, cycling (not min(1000, n))
    assert len(cycle_episodes(eps, None, 1000)) == 1000
    assert cycle_episodes(eps, None, None) == eps  # no cap (FSS-1000): every listed episode once
    assert cycle_episodes(eps, 2, 1000) == eps[:2]
    assert Counter(cycle_episodes(eps, None, 1000)) == {
        eps[0]: 334,
        eps[1]: 333,
        eps[2]: 333,
    }  # HSNet cycling
    many = [Episode(f"im{i}", 1) for i in range(1500)]
    assert cycle_episodes(many, None, 1000) == many[:1000]


# ---------------------------------------------------------------- a planted 2-episode example


class PlantedModel(nn.Module):
    """Predicts a fixed mask per class text: a stand-in network, so only the bookkeeping is under test."""

    def __init__(self, preds: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.config = SimpleNamespace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.dummy = nn.Parameter(torch.zeros(1))
        self.keys = sorted(preds)
        self.preds = [torch.as_tensor(preds[k]) for k in self.keys]

    def encode_text(self, labels):
        return torch.tensor([[-1.0 if lab == "others" else float(self.keys.index(lab))] for lab in labels])

    def forward(self, x, text):
        """``text``: one ``["others", class]`` pair per image ``(B, 2, 1)``."""
        assert text.shape == (x.shape[0], 2, 1) and (text[:, 0, 0] == -1).all()
        fg = torch.stack([self.preds[int(c)] for c in text[:, 1, 0]]).float()
        return torch.stack([1 - fg, fg], dim=1)


def _planted_source(tmp_path: Path, episodes: list[Episode]) -> EpisodeSource:
    gt = {
        "a": np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [255, 255, 0, 0]]),
        "b": np.array([[2, 2, 0, 0], [2, 2, 0, 1], [0, 0, 1, 1], [0, 0, 0, 0]]),  # class 1 is background here
    }
    for k in gt:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"{k}.png")
    return EpisodeSource(
        benchmark="planted",
        fold=0,
        class_names=("class1", "class2", "class3"),
        class_ids=(1, 2),
        episodes=tuple(episodes),
        images=("a", "b"),
        image_path=lambda i: tmp_path / f"{i}.png",
        class_map=lambda i: gt[i],
    )


PLANTED = {
    "class1": np.array([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]]),  # on image a
    "class2": np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]),  # on image b
}


def test_planted_two_episodes_fb_iou_and_miou_by_hand(tmp_path):
    source = _planted_source(tmp_path, [Episode("a", 1), Episode("b", 2)])
    protocol = EvalConfig(protocol="episodic", episode_size=4, bootstrap=0)
    r = run_episodes(PlantedModel(PLANTED), source, protocol, progress=False)
    # one episode per forward pass gives the same areas as both in one batch
    r1 = run_episodes(PlantedModel(PLANTED), source, protocol, progress=False, batch_size=1)
    assert np.array_equal(r1.intersection, r.intersection) and np.array_equal(r1.union, r.union)
    # a/class1: 14 scored pixels (two boundary pixels ignored); fg gt 4, pred 4, both 3 -> I 3, U 5;
    #           bg I = 14 - 5 = 9, U = 10 + 10 - 9 = 11.
    # b/class2: 16 pixels; fg gt 4, pred 3, both 2 -> I 2, U 5; bg I = 16 - 5 = 11, U = 12 + 13 - 11 = 14.
    assert r.intersection[0][:2].tolist() == [9, 11] and r.union[0][:2].tolist() == [11, 14]
    assert r.intersection[1][:2].tolist() == [3, 2] and r.union[1][:2].tolist() == [5, 5]
    assert r.miou == pytest.approx((3 / 5 + 2 / 5) / 2 * 100)  # 50.0
    assert r.fb_iou == pytest.approx(((9 + 11) / (11 + 14) + (3 + 2) / (5 + 5)) / 2 * 100)  # 65.0
    assert r.per_class_iou == pytest.approx({"class1": 60.0, "class2": 40.0})
    # per served episode areas (the bootstrap's unit)
    assert r.episodes.class_ids.tolist() == [1, 2] and r.episodes.intersection.tolist() == [[9, 3], [11, 2]]
    # a served repeat counts twice (COCO draws with replacement): class 1 areas double, FB-IoU shifts
    r2 = run_episodes(
        PlantedModel(PLANTED),
        _planted_source(tmp_path, [Episode("a", 1), Episode("b", 2), Episode("a", 1)]),
        protocol,
        progress=False,
    )
    assert r2.num_episodes == 3 and r2.distinct_episodes == 2
    assert r2.miou == pytest.approx(50.0)
    assert r2.fb_iou == pytest.approx(((18 + 11) / (22 + 14) + (6 + 2) / (10 + 5)) / 2 * 100)
    assert r2.episodes_per_class == {"class1": 2, "class2": 1}
    assert r2.episodes.class_ids.tolist() == [1, 2, 1]


# ---------------------------------------------------------------- PASCAL-5i end to end on a written VOC copy


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
        mask[25:, :5] = 7  # a seen class of fold 0
        Image.fromarray(mask).save(base / masks_dir / f"{name}.png")
    split = root / "splits"
    split.mkdir()
    (split / "fold0.txt").write_text("img_a__01\nimg_b__03\nimg_a__02\n")
    (root / "labels.txt").write_text("\n".join(NAMES) + "\n")
    return base


def test_find_voc_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pascal5i.find_voc(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="JPEGImages/ and SegmentationClassAug/"):
        pascal5i.find_voc(tmp_path)
    base = _fake_voc(tmp_path / "a", masks_dir="SegmentationClass")
    assert pascal5i.find_voc(tmp_path / "a") == (base / "JPEGImages", base / "SegmentationClass")
    assert pascal5i.find_voc(base)[0] == base / "JPEGImages"


def _nearest(mask: np.ndarray, size: int) -> np.ndarray:
    rows = np.floor(np.arange(size) * mask.shape[0] / size).astype(int)
    cols = np.floor(np.arange(size) * mask.shape[1] / size).astype(int)
    return mask[rows][:, cols]


def _query(model, path: Path, size: int) -> torch.Tensor:
    rgb = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = (np.asarray(rgb, np.float32) / 255 - np.array(model.config.mean)) / np.array(model.config.std)
    return torch.from_numpy(x.transpose(2, 0, 1)).float()[None]


def _expected(
    model, episodes, image_path, mask_of, names, size: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Independent bookkeeping in numpy: per-class background/foreground intersection and union."""
    inter, union = np.zeros((2, n)), np.zeros((2, n))
    model.eval()
    for image_id, cls in episodes:
        with torch.no_grad():
            text = model.encode_text(["others", names[cls - 1]])
            pred = model(_query(model, image_path(image_id), size), text).argmax(1)[0].numpy()
        mask = _nearest(mask_of(image_id), size)
        valid = mask != 255
        gt = (mask == cls).astype(int)
        for k in (0, 1):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k, cls - 1] += (p & g).sum()
            union[k, cls - 1] += (p | g).sum()
    return inter, union


def test_evaluate_pascal5i_matches_independent_bookkeeping(tmp_path, tiny_model):
    base = _fake_voc(tmp_path)
    result = pascal(tiny_model, tmp_path, 0, tmp_path / "splits", tmp_path / "labels.txt")
    # the official loader serves 1000 episodes, cycling the 3-line list: 334 / 333 / 333 times
    listed, served = [("img_a", 1), ("img_b", 3), ("img_a", 2)], (334, 333, 333)
    inter, union = np.zeros((2, 20)), np.zeros((2, 20))
    for episode, times in zip(listed, served):
        i, u = _expected(
            tiny_model,
            [episode],
            lambda i: base / "JPEGImages" / f"{i}.jpg",
            lambda i: np.array(Image.open(base / "SegmentationClassAug" / f"{i}.png")),
            NAMES,
            64,
            20,
        )
        inter, union = inter + times * i, union + times * u
    assert np.array_equal(result.intersection, inter)
    assert np.array_equal(result.union, union)
    fg = inter[1, :5] / np.maximum(union[1, :5], 1)
    assert result.miou == pytest.approx(fg.mean() * 100)
    assert result.fb_iou == pytest.approx((inter[:, :5].sum(1) / union[:, :5].sum(1)).mean() * 100)
    assert result.per_class_iou["class3"] == pytest.approx(fg[2] * 100)
    assert result.episodes_per_class == {
        "class1": 334,
        "class2": 333,
        "class3": 333,
        "class4": 0,
        "class5": 0,
    }
    assert result.num_episodes == 1000 and result.distinct_episodes == 3 and union[1, :3].min() > 0
    assert result.info["split_list_is_official"] is False and result.info["labels_match_paper"] is False
    assert result.to_dict()["split_list_is_official"] is False
    limited = pascal(tiny_model, tmp_path, 0, tmp_path / "splits", tmp_path / "labels.txt", 1)
    assert limited.num_episodes == 1 and limited.intersection[1][2] == 0
    default_labels = pascal(tiny_model, tmp_path, 0, tmp_path / "splits", None, 1)
    assert default_labels.info["labels_match_paper"] is True and "aeroplane" in default_labels.per_class_iou


def test_evaluate_pascal5i_clear_errors(tmp_path, tiny_model):
    _fake_voc(tmp_path)
    args = (tmp_path / "splits", tmp_path / "labels.txt")
    (tmp_path / "splits" / "fold1.txt").write_text("img_a__01\n")
    with pytest.raises(ValueError, match="outside fold 1"):
        pascal(tiny_model, tmp_path, 1, *args)
    (tmp_path / "splits" / "fold0.txt").write_text("img_zz__02\n")
    with pytest.raises(FileNotFoundError, match=r"episode img_zz__02: .*img_zz\.jpg does not exist"):
        pascal(tiny_model, tmp_path, 0, *args)
    with pytest.raises(FileNotFoundError, match="PASCAL VOC layout not found"):
        pascal(tiny_model, tmp_path / "splits", 0, *args)


def test_generalised_setting_counts_every_pixel_once_with_the_right_targets(tmp_path, tiny_model):
    base = _fake_voc(tmp_path)
    source = pascal5i.episode_source(tmp_path, 0, tmp_path / "splits")
    protocol = EvalConfig(protocol="episodic", episode_size=32, bootstrap=0)
    fold = generalised(tiny_model, source, "fold", protocol, progress=False)
    assert fold.labels.class_names == ("others", "aeroplane", "bicycle", "bird", "boat", "bottle")
    assert fold.num_images == 2 and fold.all_labels.seen_miou is None
    # ground-truth rows of the confusion matrix, recomputed from the masks: seen class 7 counts as "others"
    masks = [
        _nearest(np.array(Image.open(base / "SegmentationClassAug" / f"{i}.png")), 32)
        for i in ("img_a", "img_b")
    ]
    rows = fold.confusion.sum(1)
    expected = [sum(((m == 0) | (m == 7)).sum() for m in masks)] + [
        sum((m == c).sum() for m in masks) for c in range(1, 6)
    ]
    assert rows.tolist() == expected
    every = generalised(tiny_model, source, "all", protocol, progress=False)
    assert every.labels.num_classes == 21 and every.all_labels.harmonic_iou is not None
    assert every.confusion.sum(1)[7] == sum((m == 7).sum() for m in masks)
    # the generalised scores are the argmax over all labels at once
    assert np.array_equal(every.confusion, _reference_generalised(tiny_model, source))


def _reference_generalised(model, source) -> np.ndarray:
    """The generalised confusion matrix recomputed item by item: argmax over every label in one forward pass."""
    data = generalised_data(source, "all", 32, model)
    text = model.encode_text(list(data.labels.class_names))
    cm = torch.zeros(21, 21, dtype=torch.long)
    for i in range(len(data.dataset)):
        x, target = data.dataset[i]
        cm += confusion_matrix(predict_logits(model, x[None], text).argmax(1), target[None], 21)
    return cm.numpy()


def test_generalised_scores_with_a_bottleneck_head_equal_the_unchunked_argmax(tmp_path, block_model):
    """The official bottleneck head adds the max over the labels at hand, so label chunks are not comparable:
    the generalised setting used to take its argmax over chunks of 64 labels (8.8 % of pixels differed with
    chunks of 4). Now the argmax is over every label at once, whatever the head."""
    _fake_voc(tmp_path)
    source = pascal5i.episode_source(tmp_path, 0, tmp_path / "splits")
    protocol = EvalConfig(protocol="episodic", episode_size=32, bootstrap=0)
    every = generalised(block_model, source, "all", protocol, progress=False)
    assert np.array_equal(every.confusion, _reference_generalised(block_model, source))


# ---------------------------------------------------------------- COCO-20i and FSS-1000 on written copies


def _fake_coco(root: Path) -> Path:
    """HSNet layout: 4 val images with masks holding classes of fold 0 (1, 5, 9) and a seen class (2)."""
    base = root / "COCO2014"
    (base / "val2014").mkdir(parents=True)
    (base / "annotations" / "val2014").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i, classes in enumerate([(1, 2), (5,), (1, 9), (2,)]):
        name = f"COCO_val2014_{i:012d}"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(
            base / "val2014" / f"{name}.jpg"
        )
        mask = np.zeros((24, 32), np.uint8)
        for j, c in enumerate(classes):
            mask[4 + 8 * j : 12 + 8 * j, 4:28] = c
        Image.fromarray(mask).save(base / "annotations" / "val2014" / f"{name}.png")
    return base


def test_evaluate_coco20i_draws_seeded_episodes_of_the_fold(tmp_path, tiny_model):
    base = _fake_coco(tmp_path)
    coco20i.prepare(tmp_path, progress=False)
    lists = coco20i.read_classwise(base / coco20i.CLASSWISE.format(split="val2014"))
    assert lists[1] == ["val2014/COCO_val2014_000000000000.jpg", "val2014/COCO_val2014_000000000002.jpg"]
    # a fold whose other classes have no image is refused rather than silently scored on 3 of 20 classes
    with pytest.raises(ValueError, match="no query image lists class"):
        coco20i.episode_source(tmp_path, 0)
    fold_lists = {c: lists[c] for c in (1, 5, 9)} | {c: lists[1] for c in coco20i.fold_class_ids(0)[3:]}
    index = tmp_path / "index.tsv"
    coco20i.write_classwise(index, fold_lists)
    r = ep(tiny_model, coco20i.episode_source(tmp_path, 0, index, num_episodes=12), 32)
    assert r.num_episodes == 12 and sum(r.episodes_per_class.values()) == 12
    assert set(r.episodes_per_class) == {coco20i.manifest().classes[c - 1] for c in coco20i.fold_class_ids(0)}
    inter = r.intersection
    seen_cols = [c - 1 for c in range(1, 81) if c not in coco20i.fold_class_ids(0)]
    assert inter[:, seen_cols].sum() == 0 and inter.sum() > 0
    again = ep(tiny_model, coco20i.episode_source(tmp_path, 0, index, num_episodes=12), 32)
    assert np.array_equal(again.intersection, r.intersection) and np.array_equal(again.union, r.union)


def test_coco20i_void_counts_as_background_as_the_official_loader(tmp_path, tiny_model):
    # HSNet data/coco.py sets every value other than class+1 to 0 and has no ignore index: 255 is background
    base = _fake_coco(tmp_path)
    mask_file = base / "annotations" / "val2014" / "COCO_val2014_000000000000.png"
    mask = np.array(Image.open(mask_file))
    mask[0:2, :] = 255
    Image.fromarray(mask).save(mask_file)
    index = tmp_path / "index.tsv"
    coco20i.write_classwise(
        index, {c: ["val2014/COCO_val2014_000000000000.jpg"] for c in coco20i.fold_class_ids(0)}
    )
    source = coco20i.episode_source(tmp_path, 0, index, num_episodes=1)
    _, target = load_episode(source, Episode("val2014/COCO_val2014_000000000000.jpg", 1), 24, tiny_model)
    assert (target == 255).sum() == 0
    resized = resize_labels(mask, 24)
    assert torch.equal(target, (resized == 1).long()) and (resized == 255).any()


def test_evaluate_fss1000_scores_every_test_image_once(tmp_path, tiny_model):
    names = fss1000.manifest().classes
    base = tmp_path / "FSS-1000"
    rng = np.random.default_rng(2)
    for c in fss1000.test_class_ids()[:2]:
        (base / names[c - 1]).mkdir(parents=True)
        for n in (1, 2):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                base / names[c - 1] / f"{n}.jpg"
            )
            grey = np.zeros((20, 20), np.uint8)
            grey[3:15, 2 + n : 12 + n] = 200
            grey[0, :] = 127  # just below the official threshold: background
            Image.fromarray(grey).save(base / names[c - 1] / f"{n}.png")
    source = fss1000.episode_source(tmp_path, max_classes=2)
    assert [e.class_id for e in source.episodes] == [761, 761, 762, 762]
    r = ep(tiny_model, source, 32)
    inter, union = _expected(
        tiny_model,
        [(e.image_id, e.class_id) for e in source.episodes],
        lambda i: base / f"{i}.jpg",
        lambda i: np.where(
            np.array(Image.open(base / f"{i}.png").convert("L")) >= 128,
            int(names.index(i.split("/")[0])) + 1,
            0,
        ),
        names,
        32,
        1000,
    )
    assert np.array_equal(r.intersection, inter) and np.array_equal(r.union, union)
    with pytest.raises(FileNotFoundError, match="FSS-1000 class folder"):
        fss1000.episode_source(tmp_path)  # the other 238 test classes


# ---------------------------------------------------------------- ADE20K-150


def test_evaluate_ade20k_scores_150_labels_with_other_as_void(tmp_path, tiny_model):
    base = tmp_path / "ADEChallengeData2016"
    (base / "images" / "validation").mkdir(parents=True)
    (base / "annotations" / "validation").mkdir(parents=True)
    rng = np.random.default_rng(3)
    valid = 0
    for i in (1, 2):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(
            base / "images" / "validation" / f"ADE_val_{i:08d}.jpg"
        )
        ann = rng.integers(0, 151, (30, 40)).astype(np.uint8)
        valid += int((ann > 0).sum())
        Image.fromarray(ann).save(base / "annotations" / "validation" / f"ADE_val_{i:08d}.png")
    protocol = dataclasses.replace(OFFICIAL_EVAL, base_size=32, scales=(0.5, 1.0), bootstrap=0)
    data = DataConfig(dataset="ade20k150", data_root=str(tmp_path), fold=None)
    r = evaluate(with_crop(tiny_model, 32), data, protocol, split="validation", progress=False)
    assert r.num_images == 2 and r.protocol.mode == "multiscale" and r.confusion.shape == (150, 150)
    assert r.confusion.sum() == valid  # annotation 0 ("other") never scored
