"""Glue between configs and data: resolve a dataset, its label texts and the zero-shot seen/unseen split.

Zero-shot training (``DataConfig.fold`` set): the label set during training is the *seen* classes only and
pixels of unseen classes are mapped to ``ignore_index`` — they never act as targets. By default they also get
no gradient (lseg_nb's choice); ``TrainConfig.unseen_pixels='others'`` reproduces the official zero-shot
episodes, where every pixel that is not the episode's class is an "others" target. Evaluation then uses all
labels (generalised) and unseen labels only (ZS3Net/SPNet-style); the paper's own zero-shot numbers come from
the episodic protocol (:mod:`lseg_nb.engine.episodic`).

The paper's benchmarks (``pascal5i``, ``coco20i``, ``fss1000``, ``ade20k150``) take the same path: their adapters
(:mod:`lseg_nb.data.benchmarks.training`) supply the label split and the training dataset.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lseg_nb.config import DataConfig, ModelConfig
from lseg_nb.data.benchmarks.base import BenchmarkManifest
from lseg_nb.data.benchmarks.training import BenchmarkData, benchmark_data, is_benchmark
from lseg_nb.data.datasets import SegmentationDataset
from lseg_nb.data.manifests import (
    DatasetManifest,
    load_manifest,
    manifest_path,
    manifest_sha256,
    resolve_data_root,
)
from lseg_nb.data.synthetic import default_synthetic_root, generate_synthetic
from lseg_nb.data.transforms import eval_transform, train_transform
from lseg_nb.utils.io import user_path
from lseg_nb.utils.labels import LabelSplit

SYNTHETIC = "synthetic_textures"
__all__ = ["Experiment", "SeededDataset", "label_split", "make_experiment"]


def dataset_root(cfg: DataConfig, manifest: DatasetManifest) -> Path:
    """Data root for ``cfg``; the synthetic set is generated (deterministically) on first use."""
    if manifest.name == SYNTHETIC and cfg.data_root is None:
        return generate_synthetic(default_synthetic_root())
    if manifest.name == SYNTHETIC and not Path(cfg.data_root, "classes.txt").exists():
        return generate_synthetic(user_path(cfg.data_root))
    return resolve_data_root(cfg.data_root, manifest)


def label_split(manifest: DatasetManifest, root: Path, fold: int | str | None) -> LabelSplit:
    """Class names and the seen/unseen indices of ``fold``, an index or a name (``None``: every class is seen)."""
    names = tuple(manifest.class_names(root))
    if fold is None:
        return LabelSplit(names, tuple(range(len(names))), ())
    seen, unseen = manifest.fold(fold, root)
    return LabelSplit(names, tuple(seen), tuple(unseen))


class SeededDataset(Dataset):
    """Every random choice of an item — augmentation and, with ``episode_classes``, the episode class of the
    binary zero-shot loss — is a pure function of (seed, epoch, index): resumable and worker-independent.

    ``generator`` must be the generator the base dataset's transform draws from (see
    :meth:`Experiment.dataset`); it is re-seeded per item, and no global RNG (CPU or CUDA) is touched.
    ``lut`` maps dataset class indices to training targets (:meth:`LabelSplit.train_lut`). With
    ``episode_classes`` set to the number of training labels, items are ``(image, target, episode_class)``: the
    class the base dataset names as a third item element (the benchmarks' listed episodes; mapped through ``lut``,
    and refused when it is not a training label, e.g. an unseen class), or else a class present in the target,
    drawn uniformly (any label when none is present).

    An item is ``data[idx]`` (epoch from :meth:`set_epoch`) or ``data[(epoch, idx)]``: the form used by
    :func:`~lseg_nb.data.loading.train_loader`, whose worker processes never see ``set_epoch`` calls.
    """

    def __init__(
        self,
        base: Dataset,
        seed: int,
        lut: Tensor | None = None,
        generator: torch.Generator | None = None,
        episode_classes: int | None = None,
        ignore_index: int = 255,
    ) -> None:
        self.base, self.seed, self.lut, self.epoch = base, seed, lut, 0
        self.generator = generator
        self.episode_classes, self.ignore_index = episode_classes, ignore_index

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def key(self, idx: int, epoch: int | None = None) -> int:
        """The seed of item ``idx`` in ``epoch`` (default: the current epoch)."""
        return zlib.crc32(f"{self.seed}:{self.epoch if epoch is None else epoch}:{idx}".encode())

    def __getitem__(self, idx: int | tuple[int, int]) -> tuple[Tensor, ...]:
        epoch, idx = idx if isinstance(idx, tuple) else (None, idx)
        key = self.key(idx, epoch)
        if self.generator is not None:
            self.generator.manual_seed(key)
        item = self.base[idx]
        image, label = item[0], item[1]
        if self.lut is not None:
            # values beyond the table (never a class of a validated dataset) land on its last entry: void
            label = self.lut[label.clamp(0, len(self.lut) - 1)]
        if self.episode_classes is None:
            return image, label
        if len(item) > 2:
            return image, label, self._named_class(idx, int(item[2]))
        present = label[label != self.ignore_index].unique()
        pool = present if len(present) else torch.arange(self.episode_classes)
        g = torch.Generator().manual_seed(key ^ 0x5EED)
        return image, label, pool[torch.randint(len(pool), (), generator=g)]

    def _named_class(self, idx: int, cls: int) -> Tensor:
        """The training label of episode class ``cls``, which the base dataset named for item ``idx``."""
        known = 0 <= cls < (len(self.lut) if self.lut is not None else self.episode_classes)
        pos = (self.lut[cls] if self.lut is not None else torch.tensor(cls)) if known else None
        if pos is None or int(pos) == self.ignore_index:
            raise ValueError(
                f"item {idx} of {type(self.base).__name__} names episode class {cls}, which is not a training "
                "label (an unseen class of the fold, or void): unseen classes must never be training targets"
            )
        return pos


@dataclass
class Experiment:
    """Resolved data for a run: manifest, root, label split and datasets.

    ``benchmark``: set for the paper's benchmarks, whose adapter serves the datasets. ``ignore_index``: the void
    value of the dataset's labels before the training lookup table (255, or ``C`` for FSS-1000's ``C`` labels).
    """

    manifest: DatasetManifest | BenchmarkManifest
    root: Path
    labels: LabelSplit
    manifest_hashes: dict[str, str]
    benchmark: BenchmarkData | None = None
    ignore_index: int = 255

    def dataset(
        self,
        split: str,
        model_cfg: ModelConfig,
        cfg: DataConfig,
        train: bool = False,
        generator: torch.Generator | None = None,
    ) -> Dataset:
        """Dataset of ``split`` with train (random scale, crop of ``model_cfg.crop_size``, flip; drawing from
        ``generator``) or eval (normalise only) transforms."""
        if train:
            tf = train_transform(
                model_cfg.crop_size,
                model_cfg.mean,
                model_cfg.std,
                cfg.scale_range,
                cfg.flip,
                base_size=cfg.base_size,
                ignore_index=self.ignore_index,
                generator=generator,
                square_resize=cfg.square_resize,
            )
        else:
            tf = eval_transform(model_cfg.mean, model_cfg.std)
        if self.benchmark is not None:
            return self.benchmark.dataset(split, tf, cfg.max_images, generator)
        if not isinstance(self.manifest, DatasetManifest):
            raise TypeError(f"{self.manifest.name}: a benchmark experiment needs its BenchmarkData")
        return SegmentationDataset(self.root, self.manifest, split, transform=tf, max_images=cfg.max_images)


def make_experiment(cfg: DataConfig) -> Experiment:
    """Load the manifest, find (or generate) the data, verify split hashes and resolve the fold (a paper
    benchmark: its adapter's label split and datasets)."""
    if is_benchmark(cfg.dataset):
        data = benchmark_data(cfg)
        return Experiment(
            data.manifest, data.root, data.labels, data.manifest_hashes(), data, data.ignore_index
        )
    manifest = load_manifest(cfg.dataset)
    root = dataset_root(cfg, manifest)
    manifest.verify_splits(root)
    path = manifest_path(cfg.dataset)
    hashes = {manifest.name: manifest_sha256(path)} if path.exists() else {}
    return Experiment(
        manifest,
        root,
        label_split(manifest, root, cfg.fold),
        hashes,
        ignore_index=manifest.layout.ignore_index,
    )
