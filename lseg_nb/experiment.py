"""Glue between configs and data: resolve a dataset, its label texts and the zero-shot seen/unseen split.

Zero-shot training (``DataConfig.fold`` set): the label set during training is the *seen* classes only and
pixels of unseen classes are mapped to ``ignore_index`` — they never act as targets and never receive a
gradient towards or away from any text (the official code's PASCAL-5i training treats them the same way by
masking the episode class). Evaluation then uses unseen labels only (paper setting) and all labels (generalised).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lseg_nb.config import DataConfig, ModelConfig
from lseg_nb.datasets import SegmentationDataset
from lseg_nb.manifests import (
    DatasetManifest,
    load_manifest,
    manifest_path,
    manifest_sha256,
    resolve_data_root,
)
from lseg_nb.transforms import eval_transform, train_transform

SYNTHETIC = "synthetic_textures"


@dataclass(frozen=True)
class LabelSplit:
    """Class names plus the seen/unseen partition of one fold (all classes seen when no fold)."""

    class_names: tuple[str, ...]
    seen: tuple[int, ...]
    unseen: tuple[int, ...]

    @property
    def seen_names(self) -> list[str]:
        return [self.class_names[i] for i in self.seen]

    @property
    def unseen_names(self) -> list[str]:
        return [self.class_names[i] for i in self.unseen]

    def train_lut(self, ignore_index: int = 255) -> Tensor:
        """Lookup table full class index -> position in the seen label list; unseen and void -> ignore."""
        lut = torch.full((256,), ignore_index, dtype=torch.long)
        for pos, cls in enumerate(self.seen):
            lut[cls] = pos
        return lut


def dataset_root(cfg: DataConfig, manifest: DatasetManifest) -> Path:
    """Data root for ``cfg``; the synthetic set is generated (deterministically) on first use."""
    if manifest.name == SYNTHETIC and cfg.data_root is None:
        from lseg_nb.synthetic import default_synthetic_root, generate_synthetic

        return generate_synthetic(default_synthetic_root())
    if manifest.name == SYNTHETIC and not Path(cfg.data_root, "classes.txt").exists():
        from lseg_nb.synthetic import generate_synthetic

        return generate_synthetic(Path(cfg.data_root))
    return resolve_data_root(cfg.data_root, manifest)


def label_split(manifest: DatasetManifest, root: Path, fold: int | None) -> LabelSplit:
    """Class names and the seen/unseen indices of ``fold`` (``None``: every class is seen)."""
    names = tuple(manifest.class_names(root))
    if fold is None:
        return LabelSplit(names, tuple(range(len(names))), ())
    seen, unseen = manifest.fold(fold, root)
    return LabelSplit(names, tuple(seen), tuple(unseen))


class SeededDataset(Dataset):
    """Makes random augmentation a pure function of (seed, epoch, index): resumable and worker-independent."""

    def __init__(self, base: Dataset, seed: int, lut: Tensor | None = None) -> None:
        self.base, self.seed, self.lut, self.epoch = base, seed, lut, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        key = zlib.crc32(f"{self.seed}:{self.epoch}:{idx}".encode())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(key)
            image, label = self.base[idx]
        if self.lut is not None:
            label = self.lut[label.clamp(0, 255)]
        return image, label


@dataclass
class Experiment:
    """Resolved data for a run: manifest, root, label split and datasets."""

    manifest: DatasetManifest
    root: Path
    labels: LabelSplit
    manifest_hashes: dict[str, str]

    def dataset(self, split: str, model_cfg: ModelConfig, cfg: DataConfig, train: bool = False) -> Dataset:
        """Dataset of ``split`` with train (random scale/crop/flip) or eval (normalise only) transforms."""
        if train:
            tf = train_transform(cfg.crop_size, model_cfg.mean, model_cfg.std, cfg.scale_range, cfg.flip)
        else:
            tf = eval_transform(model_cfg.mean, model_cfg.std)
        return SegmentationDataset(self.root, self.manifest, split, transform=tf, max_images=cfg.max_images)


def make_experiment(cfg: DataConfig) -> Experiment:
    """Load the manifest, find (or generate) the data, verify split hashes and resolve the fold."""
    manifest = load_manifest(cfg.dataset)
    root = dataset_root(cfg, manifest)
    manifest.verify_splits(root)
    path = manifest_path(cfg.dataset)
    hashes = {manifest.name: manifest_sha256(path)} if path.exists() else {}
    return Experiment(manifest, root, label_split(manifest, root, cfg.fold), hashes)
