"""Segmentation datasets in the plain layout described by a manifest.

Layout (relative to the data root; names from ``manifest.layout``)::

    images/<id>.png     RGB image
    labels/<id>.png     single-channel class index per pixel (ignore_index = void)
    classes.txt         class names in index order (or listed inline in the manifest)
    splits/<split>.txt  image ids, one per line

Files are checked lazily per item, so opening a large dataset is instant and a bad file is reported by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lseg_nb.data.images import read_label, read_rgb
from lseg_nb.data.manifests import DatasetManifest, load_manifest, resolve_data_root
from lseg_nb.data.transforms import to_tensor_pair
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import inside, relative_part

Transform = Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]


def read_split_ids(path: Path) -> list[str]:
    """Image ids listed in a split file (blank lines and ``#`` comments skipped).

    A duplicate id (the image would be scored several times) and an id leaving the data root (``../x``, an
    absolute path) raise ``ValueError`` naming the file and the line.
    """
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise InputError(f"split file {path} is not a UTF-8 text file of image ids") from None
    ids: list[str] = []
    first: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line in first:
            raise InputError(
                f"{path}:{n}: image id {line!r} is listed again (first on line {first[line]}); each image may "
                "appear once in a split, or it is scored several times: remove the repeated line"
            )
        relative_part(line, f"{path}:{n}: image id", "the data root")
        first[line] = n
        ids.append(line)
    return ids


class SegmentationDataset(Dataset):
    """(image, label) pairs of one split.

    Items are ``(image FloatTensor (3, H, W), label LongTensor (H, W))``; without ``transform`` the image is in
    ``[0, 1]`` (not normalised) and labels keep ``ignore_index`` for void pixels. ``transform(pil_image,
    label_array)`` must return the same tensor pair (see :mod:`lseg_nb.data.transforms`).

    ``root=None`` resolves the data root with :func:`~lseg_nb.data.manifests.resolve_data_root`; ``manifest`` may
    be a :class:`DatasetManifest` or a manifest name/path. ``max_images`` keeps the first N ids of the split.
    """

    def __init__(
        self,
        root: str | Path | None,
        manifest: DatasetManifest | str | Path,
        split: str,
        transform: Transform | None = None,
        max_images: int | None = None,
    ) -> None:
        self.manifest = manifest if isinstance(manifest, DatasetManifest) else load_manifest(manifest)
        self.root = resolve_data_root(root, self.manifest)
        self.split = split
        self.transform = transform
        spec = self.manifest.split(split)
        split_file = inside(self.root, spec.file, what=f"{self.manifest.name}: splits.{split}.file")
        if not split_file.is_file():
            raise FileNotFoundError(
                f"split file {split_file} for split {split!r} of {self.manifest.name} does not exist; "
                f"check the data root ({self.root}) or the manifest's splits.{split}.file"
            )
        self.ids: list[str] = read_split_ids(split_file)
        if not self.ids:
            raise InputError(f"split file {split_file} lists no image ids")
        if max_images is not None:
            if max_images < 1:
                raise InputError(f"max_images must be >= 1, got {max_images}")
            self.ids = self.ids[:max_images]
        self.class_names: list[str] = self.manifest.class_names(self.root)
        self.ignore_index: int = self.manifest.layout.ignore_index

    @property
    def num_classes(self) -> int:
        """Number of classes (label values ``0..num_classes-1``, plus ``ignore_index``)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"SegmentationDataset({self.manifest.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.num_classes}, root={str(self.root)!r})"
        )

    def image_path(self, index: int) -> Path:
        """Path of the image of item ``index``."""
        lay = self.manifest.layout
        return inside(
            self.root, lay.images_dir, f"{self.ids[index]}{lay.image_suffix}", what=self._what(index)
        )

    def label_path(self, index: int) -> Path:
        """Path of the label map of item ``index``."""
        lay = self.manifest.layout
        return inside(
            self.root, lay.labels_dir, f"{self.ids[index]}{lay.label_suffix}", what=self._what(index)
        )

    def _what(self, index: int) -> str:
        return f"{self.manifest.name}: file of id {self.ids[index]!r} (layout folders + id + suffix)"

    def raw_image(self, index: int) -> Image.Image:
        """The untransformed RGB PIL image of item ``index`` (for figures)."""
        path = self._existing(self.image_path(index), index, "image")
        return Image.fromarray(read_rgb(path, f"image of id {self.ids[index]!r}"))

    def raw_label(self, index: int) -> np.ndarray:
        """The untransformed label map of item ``index`` as ``int64 (H, W)``, values checked against the classes."""
        path = self._existing(self.label_path(index), index, "label")
        label = read_label(path, f"label of id {self.ids[index]!r}")
        bad = np.unique(label[(label != self.ignore_index) & ((label < 0) | (label >= self.num_classes))])
        if bad.size:
            raise InputError(
                f"label {path} (id {self.ids[index]!r}) has values {bad[:10].tolist()} outside 0..{self.num_classes - 1} "
                f"and not ignore_index {self.ignore_index}; check the dataset's classes / layout.ignore_index"
            )
        return label

    def _existing(self, path: Path, index: int, what: str) -> Path:
        if not path.is_file():
            raise FileNotFoundError(
                f"{what} for id {self.ids[index]!r} (split {self.split!r}) is missing: {path} does not exist"
            )
        return path

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.raw_image(index), self.raw_label(index)
        if (image.height, image.width) != label.shape:
            raise InputError(
                f"id {self.ids[index]!r}: image {self.image_path(index)} is {image.height}x{image.width} but label "
                f"{self.label_path(index)} is {label.shape[0]}x{label.shape[1]}"
            )
        if self.transform is None:
            return to_tensor_pair(image, label)
        return self.transform(image, label)
