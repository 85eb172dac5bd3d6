"""Benchmark training through the plain training path (lseg_nb/data/benchmarks/training.py): 2-step runs of the
paper recipes on fixtures the tests write in each benchmark's on-disk format, with the targets the Trainer sees
checked against the masks (unseen classes never targets), episode determinism, the large-label LUT, and
``lseg-nb evaluate --run`` / ``lseg-nb benchmark`` running the episodic protocol."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lseg_nb.apps.cli import main
from lseg_nb.config import DataConfig, TextEncoderConfig, TrainConfig, get_recipe
from lseg_nb.data.benchmarks import coco20i, fss1000
from lseg_nb.data.benchmarks.training import FSS_TRAIN_CLASSES
from lseg_nb.data.experiment import SeededDataset, make_experiment
from lseg_nb.engine.train import Trainer, train
from lseg_nb.models import get_config
from lseg_nb.utils.labels import LabelSplit

H, W = 16, 32  # fixture images; the 64x64 square resize repeats each pixel 4x vertically, 2x horizontally


def _expand(mask: np.ndarray) -> np.ndarray:
    """The 64x64 nearest resize of a 16x32 mask, computed independently of lseg_nb."""
    return np.repeat(np.repeat(mask, 64 // H, 0), 64 // W, 1)


def _save(path: Path, colour: int) -> None:
    """A constant-colour image: its red value identifies it after normalisation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), (colour, 90, 40), np.uint8)).save(path)


def tiny(recipe: str, root: Path, run_dir: Path, **kw) -> TrainConfig:
    """A paper recipe with the tiny CPU model (8 features, 64 px, random text encoder), 2 steps, one process."""
    cfg = get_recipe(recipe)
    model = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    fields = dict(
        model=model,
        data=dataclasses.replace(cfg.data, data_root=str(root)),
        run_dir=str(run_dir),
        steps=2,
        schedule_steps=None,
        batch_size=5,
        grad_accum=1,
        sync_bn=False,
        checkpoint_every=0,
        log_every=1,
        progress=False,
    )
    return get_recipe(recipe, **{**fields, **kw})


def spy_losses(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Record (images, targets, episode classes) of every loss the Trainer computes."""
    seen: list = []
    real = Trainer._loss

    def record(self, images, target, cls):
        seen.append((images.detach().clone(), target.clone(), None if cls is None else cls.clone()))
        return real(self, images, target, cls)

    monkeypatch.setattr(Trainer, "_loss", record)
    return seen


def _identify(image: torch.Tensor, colours: dict[str, int], mean: float, std: float) -> str:
    red = float(image[0].mean()) * std + mean
    return min(colours, key=lambda k: abs(colours[k] / 255 - red))


# ---------------------------------------------------------------- PASCAL-5i


PASCAL_IMAGES = {  # image id: (colour, {class: (rows, cols)}); 255 = VOC boundary
    "img_a": (10, {6: (slice(0, 8), slice(0, 32)), 1: (slice(8, 16), slice(0, 16)), 255: (slice(8, 9), slice(16, 32))}),
    "img_b": (60, {12: (slice(0, 16), slice(0, 16)), 7: (slice(0, 16), slice(16, 32))}),
    "img_c": (110, {17: (slice(4, 12), slice(4, 28)), 3: (slice(12, 16), slice(0, 32))}),
    "img_d": (160, {6: (slice(2, 14), slice(2, 30))}),
    "img_e": (210, {1: (slice(0, 8), slice(0, 32)), 2: (slice(8, 16), slice(0, 32))}),
}  # fmt: skip
PASCAL_LISTS = {
    "trn": {0: "img_e__01\n", 1: "img_a__06\nimg_b__07\nimg_d__06\n", 2: "img_b__12\n", 3: "img_c__17\n"},
    "val": {0: "img_e__01\nimg_a__01\nimg_c__03\n", 1: "img_a__06\n", 2: "img_b__12\n", 3: "img_c__17\n"},
}


def pascal_masks() -> dict[str, np.ndarray]:
    out = {}
    for name, (_, regions) in PASCAL_IMAGES.items():
        mask = np.zeros((H, W), np.uint8)
        for cls, (rows, cols) in regions.items():
            mask[rows, cols] = cls
        out[name] = mask
    return out


def write_voc(root: Path) -> Path:
    """VOC2012/JPEGImages + SegmentationClassAug and HSNet-style splits/pascal/{trn,val}/fold<f>.txt."""
    base = root / "VOC2012"
    for name, mask in pascal_masks().items():
        _save(base / "JPEGImages" / f"{name}.jpg", PASCAL_IMAGES[name][0])
        (base / "SegmentationClassAug").mkdir(exist_ok=True)
        Image.fromarray(mask).save(base / "SegmentationClassAug" / f"{name}.png")
    for split, lists in PASCAL_LISTS.items():
        folder = root / "splits" / "pascal" / split
        folder.mkdir(parents=True)
        for f, text in lists.items():
            (folder / f"fold{f}.txt").write_text(text)
    return root


@pytest.fixture
def voc(tmp_path) -> Path:
    return write_voc(tmp_path / "voc")


@pytest.fixture(scope="module")
def pascal_run(tmp_path_factory) -> tuple[Path, Path]:
    """A 1-step run of the fold-0 recipe on the VOC fixture: (data root, run folder)."""
    tmp = tmp_path_factory.mktemp("pascal_run")
    root = write_voc(tmp / "voc")
    return root, train(tiny("lseg_rn101_pascal5i_fold0", root, tmp / "run", steps=1, batch_size=2))


def test_pascal_recipe_trains_on_the_other_folds_and_never_targets_unseen_classes(voc, tmp_path, monkeypatch):
    losses = spy_losses(monkeypatch)
    cfg = tiny("lseg_rn101_pascal5i_fold0", voc, tmp_path / "run")  # 5 episodes x 2 images = 2 batches of 5
    run = train(cfg)
    assert (run / "model.safetensors").is_file() and len(losses) == 2
    labels = make_experiment(cfg.data).labels
    lut = labels.train_lut()
    pos = {c: int(lut[c]) for c in range(21)}
    assert [c for c in range(21) if pos[c] == 255] == [1, 2, 3, 4, 5]  # fold 0's unseen classes have no label
    masks = pascal_masks()
    colours = {k: v[0] for k, v in PASCAL_IMAGES.items()}
    served: list[tuple[str, int]] = []
    for images, target, cls in losses:
        for x, t, c in zip(images, target, cls):
            name = _identify(x, colours, cfg.model.mean[0], cfg.model.std[0])
            raw = _expand(masks[name])
            # the target is the mask through the LUT: unseen classes and boundaries are ignore (-> "others")
            assert torch.equal(t, lut[torch.from_numpy(raw).long()]), name
            assert (t[torch.from_numpy(np.isin(raw, [1, 2, 3, 4, 5]))] == 255).all()
            served.append((name, int(c)))
    # one epoch: every listed episode of trn/fold1..3 as query and as support; img_e (trn/fold0) never
    assert sorted(served) == sorted(
        [("img_a", pos[6]), ("img_d", pos[6])] * 2 + [("img_b", pos[7])] * 2 + [("img_b", pos[12])] * 2
        + [("img_c", pos[17])] * 2
    )  # fmt: skip
    assert not any(c in {pos[k] for k in range(1, 6)} for _, c in served)


def test_pascal_training_refuses_a_list_that_names_an_unseen_class(voc, tmp_path):
    (voc / "splits" / "pascal" / "trn" / "fold1.txt").write_text("img_a__06\nimg_e__01\n")
    cfg = tiny("lseg_rn101_pascal5i_fold0", voc, tmp_path / "run")
    with pytest.raises(ValueError, match=r"fold1\.txt lists .*img_e.* outside fold 1's classes"):
        train(cfg)


def test_a_named_unseen_episode_class_is_refused():
    labels = LabelSplit(("others", "a", "b", "c"), (0, 1, 3), (2,))

    class Base(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return torch.zeros(3, 4, 4), torch.full((4, 4), 2), torch.tensor(2)

    data = SeededDataset(Base(), 0, labels.train_lut(), episode_classes=3)
    with pytest.raises(ValueError, match="names episode class 2, which is not a training label"):
        data[0]


def test_pascal_episodes_are_keyed_on_seed_epoch_and_index(voc, tmp_path):
    cfg = tiny("lseg_rn101_pascal5i_fold0", voc, tmp_path / "run")
    exp = make_experiment(cfg.data)

    def served(seed: int, epoch: int) -> list[tuple[float, int]]:
        g = torch.Generator()
        base = exp.dataset("train", cfg.model, cfg.data, train=True, generator=g)
        data = SeededDataset(base, seed, exp.labels.train_lut(), g, len(exp.labels.seen))
        data.set_epoch(epoch)
        return [(float(x[0].mean()), int(c)) for x, _, c in (data[i] for i in range(len(data)))]

    first = served(0, 0)
    assert first == served(0, 0)
    # queries are the listed episodes; img_a__06 / img_d__06 draw each other as support, whatever the seed
    assert len(first) == 10 and first[0::2] == served(5, 3)[0::2]
    assert first[1] == first[4] and first[5] == first[0]


# ---------------------------------------------------------------- COCO-20i


@pytest.fixture
def coco(tmp_path) -> tuple[Path, Path]:
    """COCO2014 with 3 train2014 images (classes 1 = unseen in fold 0, 2, 3, 6) and HSNet trn/fold0.pkl."""
    base = tmp_path / "coco" / "COCO2014"
    (base / "val2014").mkdir(parents=True)
    regions = {0: (2, 1), 1: (3, 6), 2: (2, 3)}
    names = []
    for i, (a, b) in regions.items():
        name = f"COCO_train2014_{i:012d}"
        mask = np.zeros((H, W), np.uint8)
        mask[:8], mask[8:12] = a, b
        _save(base / "train2014" / f"{name}.jpg", 40 + 70 * i)
        (base / "annotations" / "train2014").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(base / "annotations" / "train2014" / f"{name}.png")
        names.append(f"train2014/{name}.jpg")
    seen = [c for c in range(1, 81) if c not in coco20i.fold_class_ids(0)]
    lists = {c - 1: [names[c % 3]] for c in seen} | {1: [names[0], names[2]], 2: [names[1]], 5: [names[1]]}
    splits = tmp_path / "splits" / "coco" / "trn"
    splits.mkdir(parents=True)
    (splits / "fold0.pkl").write_bytes(pickle.dumps(lists))  # HSNet: 0-based class keys
    return tmp_path / "coco", tmp_path / "splits"


def test_coco_recipe_trains_on_seen_classes_with_seeded_draws(coco, tmp_path, monkeypatch):
    root, splits = coco
    losses = spy_losses(monkeypatch)
    cfg = tiny("lseg_rn101_coco20i_fold0", root, tmp_path / "run", batch_size=3)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, splits=str(splits)))
    train(cfg)
    lut = make_experiment(cfg.data).labels.train_lut()
    unseen = coco20i.fold_class_ids(0)
    assert all(int(lut[c]) == 255 for c in unseen) and len(losses) == 2  # 3 images -> 6 items -> 2 batches
    for _, target, cls in losses:
        assert not set(cls.tolist()) & {int(lut[c]) for c in unseen} and 255 not in cls.tolist()
        assert not set(target.unique().tolist()) - {int(lut[c]) for c in (0, 2, 3, 6)} - {255}
    # the person pixels (class 1, unseen in fold 0) of image 0 are ignore, i.e. "others" in the binary loss
    exp = make_experiment(cfg.data)
    g = torch.Generator()
    base = exp.dataset("train", cfg.model, cfg.data, train=True, generator=g)
    data = SeededDataset(base, 0, lut, g, len(exp.labels.seen))
    items = [data[i] for i in range(len(data))]
    assert len(items) == 6
    again = [data[i] for i in range(len(data))]
    assert all(torch.equal(a[1], b[1]) and int(a[2]) == int(b[2]) for a, b in zip(items, again))
    other = SeededDataset(base, 1, lut, g, len(exp.labels.seen))
    assert [int(x[2]) for x in items] != [int(other[i][2]) for i in range(6)]
    colours = {"person": 40, "b": 110, "c": 180}
    found = []
    for epoch in range(20):  # the draws are seeded: some epoch serves image 0 (class 2 above person)
        data.set_epoch(epoch)
        found += [
            t for x, t, _ in (data[i] for i in range(6)) if _identify(x, colours, 0.485, 0.229) == "person"
        ]
        if found:
            break
    assert found and all((t[32:48] == 255).all() and (t[:32] == int(lut[2])).all() for t in found)


# ---------------------------------------------------------------- FSS-1000 (1000 classes: the LUT beyond 255)


def test_label_lut_covers_more_than_256_classes():
    names = ("others", *(f"c{i}" for i in range(1, 1001)))
    split = LabelSplit(names, tuple(range(761)), tuple(range(761, 1001)))
    lut = split.train_lut(1001)
    assert len(lut) == 1002 and lut[300] == 300 and lut[760] == 760 and lut[761] == 1001 and lut[1001] == 1001
    label = torch.tensor([[0, 255, 300], [761, 1000, 1001]])
    assert SeededDataset([(torch.zeros(3, 2, 3), label)], 0, lut)[0][1].tolist() == [
        [0, 255, 300],
        [1001, 1001, 1001],
    ]


@pytest.fixture(scope="module")
def fss_root(tmp_path_factory) -> Path:
    """The 520 training class folders (one image each; classes 1, 255 and 300 with two)."""
    base = tmp_path_factory.mktemp("fss") / "FSS-1000"
    names = fss1000.manifest().classes
    for c in FSS_TRAIN_CLASSES:
        for n in (1, 2) if c in (1, 255, 300) else (1,):
            grey = np.zeros((H, W), np.uint8)
            grey[2 * n : 8 + 2 * n] = 200
            _save(base / names[c - 1] / f"{n}.jpg", c % 250)
            Image.fromarray(grey).save(base / names[c - 1] / f"{n}.png")
    return base.parent


def test_fss_recipe_trains_with_class_ids_above_255(fss_root, tmp_path, monkeypatch):
    losses = spy_losses(monkeypatch)
    cfg = tiny("lseg_vitl16_fss1000", fss_root, tmp_path / "run", batch_size=2)
    assert cfg.ignore_index == 1001
    train(cfg)
    exp = make_experiment(cfg.data)
    assert exp.ignore_index == 1001 and len(exp.labels.seen) == 761  # others + trn + val classes
    assert all(int(c) < 521 for _, _, cls in losses for c in cls)
    g = torch.Generator()
    data = SeededDataset(
        exp.dataset("train", cfg.model, cfg.data, train=True, generator=g),
        0,
        exp.labels.train_lut(cfg.ignore_index),
        g,
        len(exp.labels.seen),
        cfg.ignore_index,
    )
    assert len(data) == 2 * 523
    # episodes in class-id order: classes 1 (2 images), 2..254, 255 (2), 256..299, 300 (2): query items 2k
    for k, cls in ((255, 255), (301, 300)):
        _, target, c = data[2 * k]
        assert int(c) == cls  # rows 2..10 of image 1 are the class: rows 8..40 after the x4 resize
        assert (target[8:40] == cls).all() and (target[:8] == 0).all() and (target[40:] == 0).all()


# ---------------------------------------------------------------- ADE20K-150 (fixed labels)


def test_ade20k_recipe_trains_with_shifted_labels(tmp_path, monkeypatch):
    base = tmp_path / "ADEChallengeData2016"
    anns = {}
    for i in (1, 2):
        ann = np.zeros((H, W), np.uint8)
        ann[:8], ann[8:12] = 1, 150 - i  # 0 ("other") stays in rows 12..15
        anns[i] = ann
        _save(base / "images" / "training" / f"ADE_train_{i:08d}.jpg", 50 * i)
        (base / "annotations" / "training").mkdir(parents=True, exist_ok=True)
        Image.fromarray(ann).save(base / "annotations" / "training" / f"ADE_train_{i:08d}.png")
    losses = spy_losses(monkeypatch)
    data = DataConfig(
        dataset="ade20k150", data_root=str(tmp_path), fold=None, scale_range=(1.0, 1.0), flip=False
    )
    cfg = tiny(
        "lseg_vitl16_ade20k",
        tmp_path,
        tmp_path / "run",
        batch_size=2,
        data=dataclasses.replace(data, square_resize=True),
    )
    train(cfg)
    assert len(losses) == 2 and all(c is None for _, _, c in losses)
    for images, target, _ in losses:
        for x, t in zip(images, target):
            i = int(_identify(x, {"1": 50, "2": 100}, cfg.model.mean[0], cfg.model.std[0]))
            expected = np.where(_expand(anns[i]) == 0, 255, _expand(anns[i]).astype(np.int64) - 1)
            assert torch.equal(t, torch.from_numpy(expected))


# ---------------------------------------------------------------- the episodic protocol of a run, from the CLI


def test_evaluate_run_runs_the_recipes_episodic_protocol(pascal_run, capsys):
    _, run = pascal_run
    assert main(["evaluate", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    # the fixture's home-made episode list is not HSNet's: never "(paper protocol)" nor the published number
    assert "pascal5i fold 0: 1000 episodes (3 distinct)" in out and "episodic ['others', class]" in out
    assert "(paper protocol)" not in out and "published numbers not shown" in out
    [saved_path] = run.glob("eval_pascal5i_test_fold0_episodic*.json")
    saved = json.loads(saved_path.read_text())
    assert (
        saved["num_episodes"] == 1000
        and saved["distinct_episodes"] == 3
        and saved["image_size"] == 480
        and saved["identity"]["run"] == str(run)
    )
    assert saved["split_list_is_official"] is False and saved["labels_match_paper"] is True
    assert saved["episodes_per_class"] == {
        "aeroplane": 667,
        "bicycle": 0,
        "bird": 333,
        "boat": 0,
        "bottle": 0,
    }
    assert main(["evaluate", "--run", str(run), "--eval.episode-size", "64"]) == 0
    assert "64x64" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(run), "--official"]) == 2
    assert "episodic protocol: drop --official" in capsys.readouterr().err


def test_benchmark_command_scores_weights_with_the_protocol(pascal_run, tmp_path, capsys):
    root, run = pascal_run
    out_file = tmp_path / "bench.json"
    args = ["benchmark", "pascal", "--weights", str(run), "--root", str(root), "--eval.episode-size", "32"]
    assert main([*args, "--eval.generalised", "--max-episodes", "2", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "generalised, others + every class (not in the paper)" in out and "2 episodes" in out
    assert "(paper protocol)" not in out  # 2 of the served episodes, 32x32
    result = json.loads(out_file.read_text())
    assert result["generalised"]["all"]["num_images"] == 2 and result["image_size"] == 32
    args = ["benchmark", "fss1000", "--weights", str(run), "--root", str(root), "--fold", "1"]
    assert main([*args, "--out", str(tmp_path / "fss.json")]) == 2
    assert "FSS-1000 has one fold" in capsys.readouterr().err


def test_fss_training_classes_are_the_published_trn_list(reference_root):
    trn = [ln for ln in (reference_root / "splits" / "fss" / "trn.txt").read_text().splitlines() if ln]
    names = fss1000.manifest().classes
    assert [names[c - 1] for c in FSS_TRAIN_CLASSES] == sorted(trn)


def test_prepare_coco_indexes_train2014_and_counts_each_folds_training_images(tmp_path):
    base = tmp_path / "COCO2014"
    for split, classes in (("val2014", (1,)), ("train2014", (1, 2, 3))):
        for i, cls in enumerate(classes):  # one class per image: fold f drops the image of its unseen class
            name = f"COCO_{split}_{i:012d}"
            _save(base / split / f"{name}.jpg", 30)
            (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((H, W), cls, np.uint8)).save(base / "annotations" / split / f"{name}.png")
    lines = coco20i.prepare(tmp_path, progress=False)
    counts = [ln for ln in lines if ln.startswith("train2014 fold")]
    assert counts == [f"train2014 fold {f}: {n} images of its 60 seen classes (training episodes per epoch)"
                      for f, n in enumerate((2, 2, 2, 3))]  # fmt: skip
    # training reads that index when no HSNet pickle is given, and refuses one that misses seen classes
    cfg = tiny("lseg_rn101_coco20i_fold0", tmp_path, tmp_path / "run")
    with pytest.raises(
        ValueError, match=r"lseg_nb_classwise_train2014\.tsv: no training image lists seen class"
    ):
        train(cfg)
