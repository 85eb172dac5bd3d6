"""Training data of the paper's benchmarks, served through the same path as plain-layout datasets.

:func:`benchmark_data` turns ``DataConfig(dataset="pascal5i" | "coco20i" | "fss1000" | "ade20k150",
data_root=..., fold=f)`` into a :class:`BenchmarkData` (label split, void value, datasets) that
:func:`lseg_nb.data.experiment.make_experiment` hands to the Trainer like any manifest.

Label space of the items (before ``LabelSplit.train_lut``): the episodic benchmarks use ``("others", *classes)``
with the mask value as index (0 = background, ``c`` = class ``c`` of the official label file) and void 255 (PASCAL
boundaries), except FSS-1000, whose 1001 labels include index 255: its void is 1001. ADE20K-150: the 150 classes
as 0..149, annotation 0 ("other") void (255).

Episodic training (official zero-shot code = HSNet's loaders, built with ``shot=1`` for training, plus
``LSegmentationModuleZS.training_step``, which trains on the support and the query image of each episode with the
episode's binary ``["others", class]`` target). Episodes per epoch:

* PASCAL-5i fold f: every line of HSNet's ``trn/fold<g>.txt`` for the three g != f (the other folds' classes),
  in list order; the support image is drawn among the listed images of the episode's class, never the query.
* COCO-20i fold f: as many episodes as distinct images in the class-wise lists of the fold's 60 seen classes
  (HSNet's ``trn/fold<f>.pkl``); each draws a class uniformly, then an image of its list (the index is ignored,
  as in the official loader).
* FSS-1000: every image of the 520 training classes (ids 1..520 of the label file: sorted(trn) comes first);
  support: another image of the same class folder.

Each episode is served as two items, query then support, each ``(image, class map, class_id)``; they are
shuffled independently (official: both in the same batch). ``SeededDataset`` maps ``class_id`` to the training
label and refuses an unseen one. Every draw comes from the item's generator, which ``SeededDataset`` seeds from
(seed, epoch, index): episodes are deterministic, resumable and worker-independent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from lseg_nb.config import DataConfig
from lseg_nb.config.recipes import EPISODE_IMAGES
from lseg_nb.data.benchmarks import ade20k, coco20i, fss1000, ovss, pascal5i
from lseg_nb.data.benchmarks.base import (
    BenchmarkManifest,
    Episode,
    load_benchmark_manifest,
    missing,
    others_label_split,
)
from lseg_nb.data.benchmarks.registry import ALIASES, PREPARE
from lseg_nb.data.images import read_rgb
from lseg_nb.data.manifests import file_sha256
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import inside, user_path
from lseg_nb.utils.labels import LabelSplit

Transform = Callable[[Any, Any], tuple[Tensor, Tensor]]
FSS_TRAIN_CLASSES = tuple(range(1, 521))  # fewshot_fss.txt = sorted(trn) + sorted(val) + sorted(test)
# ADE20K has no public test labels: "test" is the validation split, which the official test_lseg.py scores
ADE_SPLITS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "validation": "validation",
    "test": "validation",
}


def is_benchmark(name: str) -> bool:
    """Whether ``name`` (a ``DataConfig.dataset``) is one of the paper's benchmarks (or an official alias)."""
    return name.lower() in PREPARE or name.lower() in ALIASES


@dataclass(frozen=True)
class TrainEpisodes:
    """What :class:`EpisodeTrainingSet` needs from an adapter.

    ``query(k, g)``: episode ``k`` (may draw from ``g``: COCO-20i). ``pool(class_id)``: images a support image of
    the class is drawn from. ``class_map(image_id, class_id)``: ``(H, W)`` int labels in the benchmark's label
    space.
    """

    benchmark: str
    fold: int
    num_episodes: int
    query: Callable[[int, torch.Generator], Episode]
    pool: Callable[[int], Sequence[str]]
    image_path: Callable[[str], Path]
    class_map: Callable[[str, int], np.ndarray]


def _draw(items: Sequence[Any], g: torch.Generator) -> Any:
    return items[int(torch.randint(len(items), (), generator=g))]


class EpisodeTrainingSet(Dataset):
    """Zero-shot training items ``(image, label, class_id)``: item ``2k`` is episode ``k``'s query, ``2k + 1`` a
    support image of its class (another image of the class; the query itself when the class has no other).

    ``transform(PIL image, label array)`` gives the tensors (lseg_nb's train transform). ``generator``: the one
    the transform draws from, re-seeded per item by ``SeededDataset``; without it each item seeds its own.
    """

    def __init__(
        self,
        episodes: TrainEpisodes,
        transform: Transform,
        generator: torch.Generator | None = None,
        max_episodes: int | None = None,
    ) -> None:
        self.episodes, self.transform, self.generator = episodes, transform, generator
        self.num_episodes = min(episodes.num_episodes, max_episodes or episodes.num_episodes)
        if self.num_episodes < 1:
            raise InputError(f"{episodes.benchmark} fold {episodes.fold}: no training episodes")

    def __len__(self) -> int:
        return self.num_episodes * EPISODE_IMAGES

    def episode(self, index: int, g: torch.Generator) -> Episode:
        """The image and class of item ``index`` (draws from ``g``)."""
        k, role = divmod(index, EPISODE_IMAGES)
        query = self.episodes.query(k, g)
        if role == 0:
            return query
        others = [i for i in self.episodes.pool(query.class_id) if i != query.image_id]
        return Episode(_draw(others, g) if others else query.image_id, query.class_id)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        g = self.generator if self.generator is not None else torch.Generator().manual_seed(index)
        ep = self.episode(index, g)
        path = self.episodes.image_path(ep.image_id)
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.episodes.benchmark} training image {ep.image_id}: {path} does not exist "
                f"(run `lseg-nb prepare {self.episodes.benchmark} --root ...`)"
            )
        rgb = Image.fromarray(read_rgb(path, f"{self.episodes.benchmark} training image", orient=False))
        label = self.episodes.class_map(ep.image_id, ep.class_id)
        if label.shape != (rgb.height, rgb.width):
            raise InputError(
                f"{ep.image_id}: mask {label.shape} and image {(rgb.height, rgb.width)} differ in size"
            )
        image, target = self.transform(rgb, label)
        return image, target, torch.tensor(ep.class_id)


# ---------------------------------------------------------------- per-benchmark episodes


def pascal_training(root: Path, fold: int, splits: str | None) -> TrainEpisodes:
    """PASCAL-5i fold ``fold``: HSNet's ``trn/fold<g>.txt`` for every g != fold, in order (11394 / 10255 / 7797 /
    11594 episodes for folds 0..3 with the published lists)."""
    m = pascal5i.manifest()
    images, masks = pascal5i.find_voc(root)
    trn = pascal5i.find_split_dir(splits, root) / "trn"
    unseen = set(m.fold_class_ids(fold))
    listed: list[Episode] = []
    for g in range(pascal5i.NUM_FOLDS):
        if g == fold:
            continue
        path = trn / f"fold{g}.txt"
        episodes = pascal5i.read_episodes(path)
        wrong = [e for e in episodes if e.class_id not in m.fold_class_ids(g) or e.class_id in unseen]
        if wrong:
            raise InputError(
                f"{path} lists {wrong[0]} outside fold {g}'s classes {m.fold_class_ids(g)}: training for fold "
                f"{fold} must never use its unseen classes {sorted(unseen)}; restore HSNet's list"
            )
        listed += episodes
    pool: dict[int, list[str]] = {}
    for e in listed:
        pool.setdefault(e.class_id, []).append(e.image_id)
    return TrainEpisodes(
        benchmark=pascal5i.NAME,
        fold=fold,
        num_episodes=len(listed),
        query=lambda k, g: listed[k],
        pool=lambda c: pool[c],
        image_path=lambda i: inside(images, f"{i}.jpg", what="PASCAL-5i image id"),
        class_map=lambda i, c: pascal5i.read_class_map(masks, i),
    )


def coco_train_classwise(base: Path, fold: int, splits: str | None) -> tuple[dict[int, list[str]], Path]:
    """Per-class train2014 lists for fold ``fold``: HSNet's ``trn/fold<f>.pkl`` (under ``splits/coco/`` or
    ``splits/``) when ``splits`` holds it, else the index ``lseg-nb prepare coco20i`` built from the masks."""
    candidates = []
    if splits is not None:
        candidates = [
            user_path(splits) / "coco" / "trn" / f"fold{fold}.pkl",
            user_path(splits) / "trn" / f"fold{fold}.pkl",
        ]
    candidates.append(base / coco20i.CLASSWISE.format(split="train2014"))
    for path in candidates:
        if path.is_file():
            return coco20i.read_classwise(path), path
    raise missing(
        "COCO-20i training index",
        candidates[-1],
        f"HSNet's splits/coco/trn/fold{fold}.pkl (pass data.splits) or the train2014 index that "
        "`lseg-nb prepare coco20i` writes from annotations/train2014",
        coco20i.manifest().sources["split_lists"],
    )


def coco_training(root: Path, fold: int, splits: str | None) -> TrainEpisodes:
    """COCO-20i fold ``fold``: seeded draws of a seen class, then an image of its list (official loader)."""
    base = coco20i.find_coco(root)
    lists, index = coco_train_classwise(base, fold, splits)
    unseen = set(coco20i.fold_class_ids(fold))
    seen = [c for c in range(1, coco20i.NUM_CLASSES + 1) if c not in unseen]
    empty = [c for c in seen if not lists.get(c)]
    if empty:
        raise InputError(f"{index}: no training image lists seen class(es) {empty[:10]} of fold {fold}")
    images = {name for c in seen for name in lists[c]}

    def query(k: int, g: torch.Generator) -> Episode:
        c = _draw(seen, g)
        return Episode(_draw(lists[c], g), c)

    return TrainEpisodes(
        benchmark=coco20i.NAME,
        fold=fold,
        num_episodes=len(images),
        query=query,
        pool=lambda c: lists[c],
        image_path=lambda i: base / i,
        class_map=lambda i, c: coco20i.read_class_map(base, i),
    )


def fss_training(root: Path) -> TrainEpisodes:
    """FSS-1000: every image of the 520 training classes once (5200 on the full data set)."""
    m = fss1000.manifest()
    base = fss1000.find_fss(root)
    listed = fss1000.list_episodes(base, list(FSS_TRAIN_CLASSES), m.classes)
    pool: dict[int, list[str]] = {}
    for e in listed:
        pool.setdefault(e.class_id, []).append(e.image_id)
    return TrainEpisodes(
        benchmark=fss1000.NAME,
        fold=0,
        num_episodes=len(listed),
        query=lambda k, g: listed[k],
        pool=lambda c: pool[c],
        image_path=lambda i: inside(base, f"{i}.jpg", what="FSS-1000 image id"),
        # class 255 is a real FSS-1000 class here: the void value of this label space is 1001
        class_map=lambda i, c: np.where(fss1000.read_foreground(base, i), c, 0).astype(np.int64),
    )


# ---------------------------------------------------------------- the experiment's view


@dataclass(frozen=True)
class BenchmarkData:
    """A benchmark resolved for a run: label split, void value and datasets (see the module docstring)."""

    name: str
    manifest: BenchmarkManifest | ovss.OvssManifest
    root: Path
    fold: int | None
    splits: str | None
    labels: LabelSplit
    ignore_index: int
    extra_hashes: dict[str, str] = field(default_factory=dict)

    def manifest_hashes(self) -> dict[str, str]:
        """sha256 of the benchmark manifest and, for a suite dataset, of its class file (recorded with runs and
        results)."""
        own = {self.name: file_sha256(self.manifest.path)} if self.manifest.path else {}
        return {**own, **self.extra_hashes}

    def dataset(
        self,
        split: str,
        transform: Transform,
        max_images: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Dataset:
        """Split ``split`` through ``transform`` (``max_images`` caps episodes, or ADE20K images)."""
        if isinstance(self.manifest, ovss.OvssManifest):
            m = self.manifest.for_split(split)  # refuses a split the dataset does not have
            return ovss.OvssDataset(m, self.root, self.ignore_index, transform, max_images)
        if self.name == ade20k.NAME:
            if split not in ADE_SPLITS:
                raise InputError(f"ADE20K-150 split must be one of {sorted(ADE_SPLITS)}, got {split!r}")
            return ade20k.ADE20KDataset(
                self.root, split=ADE_SPLITS[split], max_images=max_images, transform=transform
            )
        if split not in ("train", "trn", "training"):
            raise InputError(
                f"{self.name} has no dense {split!r} split: it is scored with the episodic protocol "
                f"(`lseg-nb evaluate --run RUN`, or `lseg-nb benchmark {self.name} --generalised` for all labels "
                "at once); train with data.train_split='train'"
            )
        if self.name == pascal5i.NAME:
            episodes = pascal_training(self.root, int(self.fold), self.splits)
        elif self.name == coco20i.NAME:
            episodes = coco_training(self.root, int(self.fold), self.splits)
        else:
            episodes = fss_training(self.root)
        return EpisodeTrainingSet(episodes, transform, generator, max_images)


def benchmark_data(cfg: DataConfig) -> BenchmarkData:
    """Resolve ``cfg`` (a paper benchmark) into its label split and datasets; errors name the field to fix."""
    name = ALIASES.get(cfg.dataset.lower(), cfg.dataset.lower())
    if ovss.is_ovss(name):
        return _suite_data(cfg, name)
    m = load_benchmark_manifest(name)
    if cfg.data_root is None:
        raise InputError(
            f"data.data_root: {m.title} needs the folder that `lseg-nb prepare {name} --root PATH` checks; "
            "pass --data.data-root PATH"
        )
    if name == ade20k.NAME:
        if cfg.fold is not None:
            raise InputError("data.fold: ADE20K-150 is a fixed-label benchmark without folds; use fold=None")
        names, fold = tuple(m.classes), None
        # the reference label texts repeat "screen" (classes 59 and 131): reproduced as published
        labels = LabelSplit(names, tuple(range(len(names))), (), shared_names=len(set(names)) < len(names))
    else:
        if cfg.fold is None:
            raise InputError(
                f"data.fold: {m.title} trains zero-shot folds; choose 0..{len(m.folds) - 1} ({m.folds[0][0]} ...)"
            )
        fold = _fold_index(m, cfg.fold)
        labels = others_label_split(m, fold)  # validates the fold
    void = 255 if len(labels.class_names) <= 255 else len(labels.class_names)
    return BenchmarkData(name, m, user_path(cfg.data_root), fold, cfg.splits, labels, void)


def _fold_index(m: BenchmarkManifest, fold: int | str) -> int:
    """The index of a benchmark fold given by index or by its name (``fold0``); unknown names list the folds."""
    if not isinstance(fold, str):
        return fold
    names = [f[0] for f in m.folds]
    if fold not in names:
        raise InputError(
            f"data.fold: {m.title} has no fold {fold!r}; its folds are 0..{len(names) - 1} = {names}"
        )
    return names.index(fold)


def _suite_data(cfg: DataConfig, name: str) -> BenchmarkData:
    """A dataset of the open-vocabulary suites (:mod:`lseg_nb.data.benchmarks.ovss`): every class seen, no fold."""
    m = ovss.load_ovss_manifest(name)
    if cfg.data_root is None:
        raise InputError(
            f"data.data_root: {m.title} needs the folder holding {m.layout.folders[0]}/ (prepared by {m.prepare}); "
            f"check it with `lseg-nb prepare {name} --root PATH`"
        )
    if cfg.fold is not None:
        raise InputError(f"data.fold: {m.title} is a fixed-label evaluation set without folds; use fold=None")
    base = ovss.find_base(m, cfg.data_root)
    labels, info = ovss.ovss_label_split(m, base)
    classes = {f"{name}:classes": file_sha256(Path(info["classes_file"]))}
    return BenchmarkData(name, m, base, None, None, labels, int(labels.void), classes)
