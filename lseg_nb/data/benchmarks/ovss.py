"""The datasets of the open-vocabulary suites, in the prepared layouts their reference harnesses read.

Training-free eight (``sclip_*``: the mmsegmentation layouts of wangf3014/SCLIP and sinahmr/NACLIP configs) and
cross-dataset six (``catseg_*``: the detectron2 layouts that cvlab-kaist/CAT-Seg ``datasets/prepare_*.py`` write).
Each dataset is a manifest, ``data_manifests/ovss/<name>.yaml`` (plain data): where it lives under ``--root``, the
image and label folders and suffixes, how its image list is made, its label map and its class-name file.

Image lists, as the reference loaders build them:

* ``split_file``: the ids of a list file (mmseg ``ann_file``: VOC ``ImageSets/Segmentation/val.txt``, PASCAL
  Context ``ImageSets/SegmentationContext/val.txt``);
* ``images``: every image under the image folder, recursively, sorted by path (mmseg ``BaseSegDataset`` without
  ``ann_file``: COCO, Cityscapes, ADE20K);
* ``labels``: every label file under the label folder, sorted (detectron2 ``load_sem_seg``, which pairs each
  ground-truth file with the image of the same stem; CAT-Seg's VOC script writes no file for an all-void mask).

Label maps: ``identity`` (file value ``k`` = class ``k``) or ``reduce_zero_label`` (mmseg: 0 becomes void and
every other value moves down by one), then the file's void value (255; CAT-Seg's 16-bit TIFFs: 65535 for
ADE20K-847, 459 for PASCAL Context 459) becomes the label split's void. A value that is neither a class nor void
is refused naming the file: it means another label encoding (e.g. Cityscapes ``labelIds`` instead of
``labelTrainIds``), which would otherwise give a silently wrong number.

Class names come from the reference files in ``$LSEG_NB_SHARED/reference/ovss`` (or a copy of the same file next
to the dataset): a ``cls_*.txt`` line lists several names of one class, comma-separated, and the class scores the
maximum over its names (SCLIP ``clip_segmentor.py``, NACLIP ``naclip.py``); a CAT-Seg JSON entry ``"a, b"`` is
embedded by its first name. VOC20b (CAT-Seg ``train_net.py`` ``VOCbEvaluator``: every prediction >= 20 counts as
class 20) becomes 21 classes whose last one carries the 39 extra names, so the maximum over names is that rule.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from lseg_nb.data.benchmarks.base import missing
from lseg_nb.data.benchmarks.ovss_convert import convert_coco_object
from lseg_nb.data.images import read_rgb
from lseg_nb.data.manifests import MANIFEST_DIR, ManifestError, file_sha256, read_plain_yaml
from lseg_nb.data.roots import shared_dir
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import user_path
from lseg_nb.utils.labels import LabelSplit

OVSS_MANIFEST_DIR = MANIFEST_DIR / "ovss"
LISTINGS = ("split_file", "images", "labels")
LABEL_MAPS = ("identity", "reduce_zero_label")
CLASS_FORMATS = ("cls_txt", "catseg_json")
Transform = Callable[[Any, Any], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class OvssLayout:
    """Where the files are: the dataset folder (first of ``folders`` under the root that holds ``images``),
    image/label folders and suffixes, the image list (``listing``; ``split_file`` for ``split_file``), the label
    map and the void value written in the label files."""

    folders: tuple[str, ...]
    images: str
    labels: str
    image_suffix: str
    label_suffix: str
    listing: str
    label_map: str
    void: int
    split_file: str | None = None


@dataclass(frozen=True)
class OvssManifest:
    """One suite dataset (see the module docstring); ``merge_from``: class entries from this index on are names
    of one last class (VOC20b)."""

    name: str
    title: str
    suite: str
    benchmark: str
    description: str
    licence: str
    sources: dict[str, str]
    layout: OvssLayout
    classes_file: str
    classes_sha256: str
    classes_format: str
    num_classes: int
    background: int | None
    prepare: str
    reference: str
    merge_from: int | None = None
    train: tuple[str, str] | None = None
    path: Path | None = None

    protocol = "fixed"

    @property
    def split_names(self) -> tuple[str, ...]:
        """``("val",)``, plus ``"train"`` for a training set (``train``: its image and label folders)."""
        return ("train", "val") if self.train else ("val",)

    def for_split(self, split: str) -> OvssManifest:
        """The manifest whose layout points at ``split`` (``train`` or ``val``/``validation``/``test``)."""
        if split in ("val", "validation", "test"):
            return self
        if split in ("train", "trn", "training") and self.train:
            lay = dataclasses.replace(self.layout, images=self.train[0], labels=self.train[1])
            return dataclasses.replace(self, layout=lay)
        raise InputError(
            f"{self.title} has no {split!r} split: it has {list(self.split_names)}"
            + ("" if self.train else " (an evaluation set: the suites test on its validation split)")
        )


_REQUIRED = set(
    "name title suite benchmark description licence sources layout classes_file classes_sha256 classes_format "
    "num_classes background prepare reference".split()
)
_LAYOUT = {"folders", "images", "labels", "image_suffix", "label_suffix", "listing", "label_map", "void"}


def _req(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {msg}")


def parse_ovss_manifest(data: Any, path: Path) -> OvssManifest:
    """Validate the parsed YAML of a suite-dataset manifest; errors name the file and the field."""
    f = path.name
    _req(isinstance(data, dict), f, f"expected a mapping, got {type(data).__name__}")
    optional = {"merge_from", "train"}
    unknown = sorted(set(data) - _REQUIRED - optional)
    _req(not unknown, f, f"unknown field(s) {unknown}; valid: {sorted(_REQUIRED | optional)}")
    train = data.get("train")
    _req(train is None or (isinstance(train, dict) and set(train) == {"images", "labels"}), f"{f}: train",
         "expected {images, labels} (folders of the training split)")  # fmt: skip
    absent = sorted(_REQUIRED - set(data))
    _req(not absent, f, f"missing field(s) {absent}")
    lay = data["layout"]
    _req(isinstance(lay, dict), f"{f}: layout", "expected a mapping")
    bad = sorted(set(lay) - _LAYOUT - {"split_file"}) + sorted(_LAYOUT - set(lay))
    _req(not bad, f"{f}: layout", f"unknown or missing field(s) {bad}")
    _req(lay["listing"] in LISTINGS, f"{f}: layout.listing", f"one of {LISTINGS}, got {lay['listing']!r}")
    _req(lay["label_map"] in LABEL_MAPS, f"{f}: layout.label_map", f"one of {LABEL_MAPS}")
    _req((lay["listing"] == "split_file") == bool(lay.get("split_file")), f"{f}: layout.split_file", "needed "
         "exactly when listing is split_file")  # fmt: skip
    _req(data["classes_format"] in CLASS_FORMATS, f"{f}: classes_format", f"one of {CLASS_FORMATS}")
    _req(
        isinstance(data["num_classes"], int) and data["num_classes"] > 0, f"{f}: num_classes", "positive int"
    )
    bg = data["background"]
    _req(
        bg is None or (isinstance(bg, int) and 0 <= bg < data["num_classes"]),
        f"{f}: background",
        "index or null",
    )
    _req(isinstance(lay["folders"], list) and lay["folders"], f"{f}: layout.folders", "a non-empty list")
    layout = OvssLayout(
        folders=tuple(str(x) for x in lay["folders"]),
        images=str(lay["images"]),
        labels=str(lay["labels"]),
        image_suffix=str(lay["image_suffix"]),
        label_suffix=str(lay["label_suffix"]),
        listing=lay["listing"],
        label_map=lay["label_map"],
        void=int(lay["void"]),
        split_file=lay.get("split_file"),
    )
    sources = data["sources"]
    _req(isinstance(sources, dict) and sources, f"{f}: sources", "a non-empty mapping")
    return OvssManifest(
        name=str(data["name"]),
        title=str(data["title"]),
        suite=str(data["suite"]),
        benchmark=str(data["benchmark"]),
        description=str(data["description"]),
        licence=str(data["licence"]),
        sources={str(k): str(v) for k, v in sources.items()},
        layout=layout,
        classes_file=str(data["classes_file"]),
        classes_sha256=str(data["classes_sha256"]),
        classes_format=data["classes_format"],
        num_classes=int(data["num_classes"]),
        background=bg,
        prepare=str(data["prepare"]),
        reference=str(data["reference"]),
        merge_from=data.get("merge_from"),
        train=None if train is None else (str(train["images"]), str(train["labels"])),
        path=path,
    )


def ovss_names() -> list[str]:
    """The names of every suite dataset with a manifest."""
    return sorted(p.stem for p in OVSS_MANIFEST_DIR.glob("*.yaml"))


@cache
def load_ovss_manifest(name: str) -> OvssManifest:
    """``data_manifests/ovss/<name>.yaml``, validated (cached)."""
    path = OVSS_MANIFEST_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ManifestError(f"no suite dataset {name!r}; known: {ovss_names()}")
    return parse_ovss_manifest(read_plain_yaml(path), path)


def is_ovss(name: str) -> bool:
    """Whether ``name`` (a ``DataConfig.dataset``) is a suite dataset."""
    return (OVSS_MANIFEST_DIR / f"{name.lower()}.yaml").is_file()


# ---------------------------------------------------------------- class names


def find_classes_file(m: OvssManifest, base: Path | None = None) -> Path:
    """The reference class-name file: ``$LSEG_NB_SHARED/reference/ovss/<classes_file>``, else a copy of it (same
    file name) in the dataset folder ``base``."""
    candidates = [shared_dir() / "reference" / "ovss" / m.classes_file]
    if base is not None:
        candidates.append(base / Path(m.classes_file).name)
    for path in candidates:
        if path.is_file():
            return path
    raise missing(
        f"{m.title} class names",
        candidates[0],
        f"the reference class file {Path(m.classes_file).name} (set LSEG_NB_SHARED to the folder holding "
        f"reference/ovss, or put the file in {base or 'the dataset folder'})",
        m.sources["classes"],
    )


def _dedupe(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def read_class_names(m: OvssManifest, path: Path) -> tuple[tuple[str, ...], ...]:
    """Names of each class from the reference file (module docstring: several per ``cls_*.txt`` line, the first
    of each CAT-Seg entry, VOC20b's extra entries merged into its last class)."""
    text = path.read_text(encoding="utf-8")
    if m.classes_format == "cls_txt":
        rows = [_dedupe(n.strip() for n in line.split(",")) for line in text.splitlines() if line.strip()]
    else:
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not a JSON list of class names ({e})") from None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise InputError(f"{path}: expected a JSON list of class names")
        rows = [(e.split(",")[0].strip(),) for e in entries]
        if m.merge_from is not None:
            rows = [*rows[: m.merge_from], _dedupe(n for r in rows[m.merge_from :] for n in r)]
    if len(rows) != m.num_classes or not all(rows):
        raise InputError(
            f"{path} gives {len(rows)} classes; {m.title} has {m.num_classes} (one non-empty entry per class, in "
            f"class-index order, as {m.sources['classes']})"
        )
    return tuple(rows)


def ovss_label_split(m: OvssManifest, base: Path | None = None) -> tuple[LabelSplit, dict[str, Any]]:
    """The label split (every class seen, the background class marked) and the class file's provenance."""
    path = find_classes_file(m, base)
    names = read_class_names(m, path)
    flat = [n for row in names for n in row]
    labels = LabelSplit(names, background=m.background, shared_names=len(set(flat)) < len(flat))
    sha = file_sha256(path)
    return labels, {"classes_file": str(path), "classes_match_reference": sha == m.classes_sha256}


# ---------------------------------------------------------------- files


def find_base(m: OvssManifest, root: str | Path) -> Path:
    """The dataset folder: the first of the manifest's ``folders`` under ``root`` holding the image folder."""
    root = user_path(root)
    for rel in m.layout.folders:
        base = root / rel
        if (base / m.layout.images).is_dir():
            return base
    raise missing(
        f"{m.title}",
        root / m.layout.folders[0] / m.layout.images,
        f"{m.layout.images}/ in one of {[str(root / f) for f in m.layout.folders]}; it is prepared by {m.prepare}",
        m.sources["data"],
    )


def _walk(folder: Path, suffix: str) -> list[str]:
    return sorted(
        str(p.relative_to(folder))[: -len(suffix)] for p in folder.rglob(f"*{suffix}") if p.is_file()
    )


def list_ids(m: OvssManifest, base: Path) -> list[str]:
    """Image ids (paths relative to the image folder, without suffix) in the reference loader's order."""
    lay = m.layout
    if lay.listing == "split_file":
        path = base / str(lay.split_file)
        if not path.is_file():
            raise missing(
                f"{m.title} image list", path, f"{lay.split_file}, one id per line", m.sources["data"]
            )
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        folder, suffix = (
            (base / lay.images, lay.image_suffix)
            if lay.listing == "images"
            else (base / lay.labels, lay.label_suffix)
        )
        if not folder.is_dir():
            raise missing(
                f"{m.title} {lay.listing}", folder, f"*{suffix} files ({m.prepare})", m.sources["data"]
            )
        ids = _walk(folder, suffix)
    if not ids:
        raise InputError(f"{m.title}: no images listed under {base} ({lay.listing}); prepared by {m.prepare}")
    return ids


def paths(m: OvssManifest, base: Path, image_id: str) -> tuple[Path, Path]:
    """``(image, label)`` files of ``image_id``."""
    lay = m.layout
    return (
        base / lay.images / f"{image_id}{lay.image_suffix}",
        base / lay.labels / f"{image_id}{lay.label_suffix}",
    )


def read_label(m: OvssManifest, path: Path, void: int) -> np.ndarray:
    """A label file as ``(H, W)`` int64 class indices with ``void`` for unscored pixels (module docstring)."""
    with Image.open(path) as im:
        raw = np.array(im).astype(np.int64)
    if raw.ndim != 2:
        raise InputError(
            f"{path} is not a single-channel label map (shape {raw.shape}); {m.title} needs class ids"
        )
    is_void = raw == m.layout.void
    if m.layout.label_map == "reduce_zero_label":
        is_void |= raw == 0
        raw = raw - 1
    label = np.where(is_void, void, raw)
    bad = np.unique(label[(label != void) & ((label < 0) | (label >= m.num_classes))])
    if bad.size:
        raise InputError(
            f"{path} holds values {bad[:8].tolist()} that are neither a class (0..{m.num_classes - 1} after "
            f"{m.layout.label_map}) nor void ({m.layout.void}): another label encoding? {m.title} expects the "
            f"files {m.prepare} writes"
        )
    return label


class OvssDataset(Dataset):
    """``(image, label)`` of a suite dataset at full resolution through ``transform(PIL image, label array)``."""

    def __init__(
        self, m: OvssManifest, base: Path, void: int, transform: Transform, max_images: int | None = None
    ) -> None:
        self.m, self.base, self.void, self.transform = m, base, void, transform
        self.ids = list_ids(m, base)[:max_images]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_path, label_path = paths(self.m, self.base, self.ids[index])
        for p, what in ((image_path, "image"), (label_path, "label")):
            if not p.is_file():
                raise missing(
                    f"{self.m.title} {what} of {self.ids[index]}", p, self.m.prepare, self.m.sources["data"]
                )
        rgb = Image.fromarray(read_rgb(image_path, f"{self.m.title} image", orient=False))
        label = read_label(self.m, label_path, self.void)
        if label.shape != (rgb.height, rgb.width):
            raise InputError(f"{label_path} is {label.shape} but {image_path} is {(rgb.height, rgb.width)}")
        return self.transform(rgb, label)


def prepare_dataset(
    name: str, root: str | Path, out: str | Path | None = None, splits: str | Path | None = None
) -> list[str]:
    """Check a prepared copy of suite dataset ``name`` in place: folders, the class file, every listed image and
    label file, and the label values of the first files (the ``prepare`` signature of every benchmark; ``out``
    only for COCO-Object's conversion, no ``splits``). Returns summary lines; errors name what is missing and the
    script that makes it."""
    m = load_ovss_manifest(name)
    if splits is not None:
        raise InputError(f"{name} takes no --splits: its image list is part of the prepared layout")
    lines: list[str] = []
    if out is not None:
        if name != "sclip_coco_object":
            raise InputError(f"{m.title} is checked in place (prepared by {m.prepare}); drop --out")
        # the one conversion: COCO-Object labels written next to the COCO-Stuff maps under --root
        if user_path(out).resolve() != user_path(root).resolve():
            raise InputError(
                "COCO-Object labels are written next to the COCO-Stuff maps they come from: pass --out equal to --root"
            )
        lines = convert_coco_object(find_base(m, root))
    base = find_base(m, root)
    labels, info = ovss_label_split(m, base)
    ids = list_ids(m, base)
    for k, image_id in enumerate(ids):
        for p, what in zip(paths(m, base, image_id), ("image", "label"), strict=True):
            if not p.is_file():
                raise missing(f"{m.title} {what} of {image_id} (item {k + 1} of {len(ids)})", p, m.prepare,
                              m.sources["data"])  # fmt: skip
    for image_id in ids[:20]:
        read_label(m, paths(m, base, image_id)[1], int(labels.void))
    note = (
        ""
        if info["classes_match_reference"]
        else " (differs from the reference file: numbers are not comparable)"
    )
    return [
        *lines,
        f"{m.title}: {base}",
        f"{len(ids)} images with labels ({m.layout.listing}: {m.layout.split_file or m.layout.images})",
        f"classes: {labels.num_classes} from {info['classes_file']}{note}",
        f"training set of the {m.suite} suite ({m.layout.folders[0]}/{m.train[0]} is not checked here): lseg-nb "
        "train --preset lseg_vitl16_coco_stuff171 --data.data-root ..."
        if m.train
        else f"suite {m.suite}, benchmark {m.benchmark}: lseg-nb benchmark {m.suite} --only {m.benchmark} --root ...",
    ]
