"""ADE20K-150 (ADEChallengeData2016) for fixed-label evaluation with the official multi-scale protocol.

Layout (the official zip, checked in place)::

    ADEChallengeData2016/images/{training,validation}/ADE_*_<n>.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_*_<n>.png   0 = other (void), k = class k (1..150)

:class:`ADE20KDataset` yields ``(normalised image float (3, H, W) at full resolution, label int64 (H, W))`` with
labels 0..149 and 255 for "other" (the official reader subtracts 1 and ignores -1), ready for
``lseg_nb.evaluate`` with (the official multi-scale protocol, ``lseg_nb.config.OFFICIAL_EVAL``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from lseg_nb.data.benchmarks.base import IGNORE, BenchmarkManifest, load_benchmark_manifest, missing
from lseg_nb.data.images import read_rgb
from lseg_nb.data.transforms import Normalize
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import user_path

NAME = "ade20k150"
NUM_CLASSES = 150
SPLITS = {"training": 20210, "validation": 2000}


def manifest() -> BenchmarkManifest:
    """The ADE20K-150 benchmark manifest."""
    return load_benchmark_manifest(NAME)


def ade20k_labels() -> list[str]:
    """The 150 label texts as the official code reads them (first synonym of each objectInfo150 ``Name``)."""
    return list(manifest().classes)


def find_ade20k(root: str | Path) -> Path:
    """``ADEChallengeData2016`` at ``root`` or ``root/ADEChallengeData2016``."""
    root = user_path(root)
    for base in (root, root / "ADEChallengeData2016"):
        if (base / "images").is_dir() and (base / "annotations").is_dir():
            return base
    raise missing(
        "ADE20K",
        root / "ADEChallengeData2016" / "images",
        f"images/ and annotations/ in {root} or {root}/ADEChallengeData2016",
        manifest().sources["ade_challenge_2016"],
    )


def label_from_annotation(annotation: np.ndarray) -> np.ndarray:
    """ADE annotation (0 other, 1..150) -> label int64 with 0..149 and 255 = void."""
    a = annotation.astype(np.int64)
    bad = np.unique(a[a > NUM_CLASSES])
    if bad.size:
        raise InputError(f"annotation values {bad[:10].tolist()} outside 0..150")
    return np.where(a == 0, IGNORE, a - 1)


class ADE20KDataset(Dataset):
    """``(image, label)`` of one ADE20K split, normalised with ``mean``/``std`` (the model's), full resolution.

    ``transform(PIL image, label array)`` replaces the normalisation (training: lseg_nb's train transform).
    """

    def __init__(
        self,
        root: str | Path,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        split: str = "validation",
        max_images: int | None = None,
        transform: Callable[[Any, Any], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise InputError(f"split must be one of {list(SPLITS)}, got {split!r}")
        self.base = find_ade20k(root)
        folder = self.base / "images" / split
        if not folder.is_dir():
            raise missing(
                f"ADE20K {split} images", folder, "ADE_*.jpg files", manifest().sources["ade_challenge_2016"]
            )
        self.ids = sorted(p.stem for p in folder.glob("*.jpg"))[:max_images]
        if not self.ids:
            raise missing(
                f"ADE20K {split} images",
                folder / "ADE_val_00000001.jpg",
                "ADE_*.jpg files",
                manifest().sources["ade_challenge_2016"],
            )
        self.split = split
        if transform is None and (mean is None or std is None):
            raise InputError("ADE20KDataset needs mean and std (the model's) or a transform")
        self.transform = transform if transform is not None else Normalize(mean, std)

    def __len__(self) -> int:
        return len(self.ids)

    def paths(self, index: int) -> tuple[Path, Path]:
        """``(image, annotation)`` paths of item ``index``."""
        i = self.ids[index]
        return (
            self.base / "images" / self.split / f"{i}.jpg",
            self.base / "annotations" / self.split / f"{i}.png",
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_path, ann_path = self.paths(index)
        if not ann_path.is_file():
            raise missing(
                f"annotation of {self.ids[index]}",
                ann_path,
                "a class-index PNG",
                manifest().sources["ade_challenge_2016"],
            )
        rgb = Image.fromarray(read_rgb(image_path, "ADE20K image", orient=False))
        with Image.open(ann_path) as a:
            label = label_from_annotation(np.array(a))
        if label.shape != (rgb.height, rgb.width):
            raise InputError(f"{ann_path} is {label.shape} but {image_path} is {(rgb.height, rgb.width)}")
        return self.transform(rgb, label)


def prepare(root: str | Path, out: str | Path | None = None, splits: str | Path | None = None) -> list[str]:
    """Check a local ADEChallengeData2016 in place: every image of each split has its annotation PNG."""
    if out is not None:
        raise InputError("ADE20K is used in place (ADEChallengeData2016/images + annotations); drop --out")
    m = manifest()
    base = find_ade20k(root)
    lines = [f"ADE20K: {base}"]
    for split, expected in SPLITS.items():
        folder = base / "images" / split
        if not folder.is_dir():
            if split == "training":
                lines.append("training: absent (needed only for training)")
                continue
            raise missing(
                "ADE20K validation images",
                folder,
                "2000 ADE_val_*.jpg files",
                m.sources["ade_challenge_2016"],
            )
        ids = sorted(p.stem for p in folder.glob("*.jpg"))
        anns = {p.stem for p in (base / "annotations" / split).glob("*.png")}
        gone = [i for i in ids if i not in anns]
        if gone:
            raise missing(
                f"{len(gone)} of {len(ids)} ADE20K {split} annotations",
                base / "annotations" / split / f"{gone[0]}.png",
                f"one PNG per image (first missing: {gone[:5]})",
                m.sources["ade_challenge_2016"],
            )
        note = "" if len(ids) == expected else f" (the official release has {expected})"
        lines.append(f"{split}: {len(ids)} images with annotations{note}")
    return lines
