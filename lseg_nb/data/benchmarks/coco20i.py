"""COCO-20i: COCO 2014 images with per-class mask PNGs (HSNet layout), seeded episodes as the official loader.

Layout (HSNet's ``Datasets_HSN/COCO2014``)::

    COCO2014/val2014/COCO_val2014_<id>.jpg
    COCO2014/annotations/val2014/COCO_val2014_<id>.png   0 background, k = class k of the label file (1..80)
    COCO2014/train2014/..., annotations/train2014/...     (training only)

The masks are HSNet's (Google Drive links in the manifest) or converted from ``annotations/instances_<split>.json``
by :func:`convert_instances` (``lseg-nb prepare coco20i``; needs ``pip install 'lseg_nb[coco]'`` for pycocotools):
each annotation's mask is painted with its class in instances-json order (later annotations overwrite overlaps;
crowd regions count as their class). HSNet's own conversion script is not published, so converted masks may
differ from HSNet's on overlaps; use HSNet's masks to reproduce the paper.

Episodes: fold ``f`` holds out classes ``f+1, f+5, ..., f+77``. Each of the 1000 episodes draws a class uniformly
among the fold's 20, then a query image uniformly among the val2014 images containing it, with the same legacy
NumPy calls as the official loader (``RandomState(seed).choice(..., 1, replace=False)``). The per-class image lists
come from HSNet's ``splits/coco/val/fold<f>.pkl`` when given (then seed 0 reproduces the official sequence, whose
test script seeds NumPy with 0) or else from the masks (every image with at least one pixel of the class).

Void: the official COCO loader (HSNet ``data/coco.py``, ``DatasetCOCO.load_frame``, copied into lang-seg's
``fewshot_data``) sets every mask value other than ``class + 1`` to background and passes no ignore index to the
evaluator, so a 255 in a mask counts as background there, unlike PASCAL's ignored boundaries. The episode masks
here follow it (:func:`episode_class_map`); whether HSNet's distributed PNGs hold 255 at all could not be checked
offline, converted masks never do.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from lseg_nb.data.benchmarks.base import (
    IGNORE,
    BenchmarkManifest,
    Episode,
    EpisodeSource,
    labels_match_paper,
    load_benchmark_manifest,
    missing,
    read_label_file,
)
from lseg_nb.utils.errors import InputError, SetupError
from lseg_nb.utils.io import atomic_save_png, atomic_write_text, inside, user_path

NAME = "coco20i"
NUM_CLASSES = 80
NUM_FOLDS = 4
SPLITS = ("train2014", "val2014")
CLASSWISE = "lseg_nb_classwise_{split}.tsv"  # built from the masks by prepare
HSNET_CLASSWISE = "hsnet_classwise_{split}.tsv"  # converted from HSNet's fold pickles by prepare


def manifest() -> BenchmarkManifest:
    """The COCO-20i benchmark manifest."""
    return load_benchmark_manifest(NAME)


def fold_class_ids(fold: int) -> list[int]:
    """Unseen classes of fold ``fold``: ``f+1, f+5, ..., f+77`` (1-based, label-file order)."""
    return manifest().fold_class_ids(fold)


def find_coco(root: str | Path) -> Path:
    """The COCO 2014 folder (holding ``val2014/``) at ``root`` or ``root/COCO2014``."""
    root = user_path(root)
    for base in (root, root / "COCO2014"):
        if (base / "val2014").is_dir():
            return base
    raise missing(
        "COCO 2014 images",
        root / "COCO2014" / "val2014",
        f"val2014/ (and annotations/) in {root} or {root}/COCO2014",
        manifest().sources["val2014"],
    )


def mask_path(base: Path, image_rel: str) -> Path:
    """Mask PNG of an image given as ``<split>/<file>.jpg`` (HSNet naming)."""
    rel = Path(inside(Path(), image_rel, what="COCO-20i image name"))
    return base / "annotations" / rel.parent / f"{rel.stem}.png"


def read_class_map(base: Path, image_rel: str) -> np.ndarray:
    """Class-index mask of ``image_rel`` as int64 ``(H, W)`` (0 background, 1..80)."""
    path = mask_path(base, image_rel)
    if not path.is_file():
        raise missing(
            f"mask of {image_rel}",
            path,
            "a class-index PNG (run `lseg-nb prepare coco20i`)",
            manifest().sources["hsnet_masks_val2014"],
        )
    with Image.open(path) as m:
        label = np.array(m)
    if label.ndim != 2:
        raise InputError(f"{path} is not a class-index PNG (shape {label.shape})")
    return label.astype(np.int64)


def episode_class_map(base: Path, image_rel: str) -> np.ndarray:
    """:func:`read_class_map` as the official evaluation sees it: 255 (void) counts as background (0)."""
    label = read_class_map(base, image_rel)
    label[label == IGNORE] = 0
    return label


# ---------------------------------------------------------------- per-class image lists


def build_classwise(base: Path, split: str = "val2014", progress: bool = True) -> dict[int, list[str]]:
    """``{class_id: [image_rel, ...]}`` of every mask in ``annotations/<split>`` (sorted by file name)."""
    folder = base / "annotations" / split
    if not folder.is_dir():
        raise missing(
            f"{split} masks",
            folder,
            "one class-index PNG per image",
            manifest().sources["hsnet_masks_val2014"],
        )
    out: dict[int, list[str]] = {c: [] for c in range(1, NUM_CLASSES + 1)}
    for path in tqdm(sorted(folder.glob("*.png")), desc=f"index {split} masks", disable=not progress):
        with Image.open(path) as m:
            present = np.unique(np.array(m))
        for c in present[(present >= 1) & (present <= NUM_CLASSES)].tolist():
            out[int(c)].append(f"{split}/{path.stem}.jpg")
    return out


def write_classwise(path: Path, classwise: dict[int, list[str]]) -> None:
    """Write a per-class image index as ``<class_id>\\t<image_rel>`` lines (list order kept), atomically."""
    lines = [f"{c}\t{name}" for c in sorted(classwise) for name in classwise[c]]
    atomic_write_text(path, "\n".join(lines) + "\n")


class _PlainUnpickler(pickle.Unpickler):
    """Reads only plain containers/strings/ints: any class or function reference is refused (no code runs)."""

    def find_class(self, module: str, name: str) -> None:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only plain dict/list/str/int are read"
        )


def read_hsnet_pickle(path: Path) -> dict[int, list[str]]:
    """HSNet ``splits/coco/<split>/fold<f>.pkl`` (``{0-based class: [image_rel]}``) -> 1-based class ids."""
    try:
        with open(path, "rb") as f:
            data = _PlainUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise InputError(f"{path}: not a plain HSNet class-wise pickle ({e})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, int) and isinstance(v, list) and all(isinstance(s, str) for s in v)
        for k, v in data.items()
    ):
        raise InputError(f"{path}: expected a dict {{class index: [image names]}}")
    return {int(k) + 1: list(v) for k, v in data.items()}


def read_hsnet_fold_pickles(splits: Path) -> dict[int, list[str]]:
    """HSNet's four ``val/fold<f>.pkl`` (under ``splits/coco/`` or ``splits/``) merged into one class-wise index.

    Every real pickle holds all 80 class keys, with empty lists outside its fold; only non-empty lists are merged
    (a plain ``dict.update`` would let the last fold empty the others), and two different non-empty lists for
    one class are refused."""
    merged: dict[int, list[str]] = {}
    origin: dict[int, Path] = {}
    for f in range(NUM_FOLDS):
        candidates = (splits / "coco" / "val" / f"fold{f}.pkl", splits / "val" / f"fold{f}.pkl")
        pkl = next((p for p in candidates if p.is_file()), None)
        if pkl is None:
            raise missing(
                "HSNet COCO-20i list", candidates[0], "val/fold0..3.pkl", manifest().sources["split_lists"]
            )
        for class_id, names in read_hsnet_pickle(pkl).items():
            if not names:
                continue
            if class_id in merged and merged[class_id] != names:
                raise InputError(
                    f"{pkl} and {origin[class_id]} list different images for class {class_id}: the fold pickles "
                    "must come from one HSNet checkout (data/splits/coco/val)"
                )
            merged[class_id], origin[class_id] = names, pkl
    return merged


def read_classwise(path: str | Path) -> dict[int, list[str]]:
    """Per-class image lists from a TSV written by :func:`write_classwise` or an HSNet fold pickle (``.pkl``)."""
    path = user_path(path)
    if not path.is_file():
        raise missing(
            "COCO-20i class-wise image index",
            path,
            "run `lseg-nb prepare coco20i`",
            manifest().sources["split_lists"],
        )
    if path.suffix == ".pkl":
        return read_hsnet_pickle(path)
    out: dict[int, list[str]] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cls, sep, name = line.partition("\t")
        if not sep or not cls.isdigit() or not 1 <= int(cls) <= NUM_CLASSES or not name:
            raise InputError(
                f"{path}:{lineno}: expected '<class_id 1..80>\\t<split>/<image>.jpg', got {line!r}"
            )
        out.setdefault(int(cls), []).append(name)
    return out


def default_classwise(base: Path, split: str = "val2014") -> Path:
    """HSNet's lists (converted by prepare) when present, else the index built from the masks."""
    hsnet = base / HSNET_CLASSWISE.format(split=split)
    return hsnet if hsnet.is_file() else base / CLASSWISE.format(split=split)


def sample_episodes(
    classwise: dict[int, list[str]], class_ids: list[int], num_episodes: int = 1000, seed: int = 0
) -> list[Episode]:
    """Seeded episodes as the official loader: class uniform over ``class_ids``, then an image uniform in its list."""
    empty = [c for c in class_ids if not classwise.get(c)]
    if empty:
        raise InputError(
            f"no query image lists class(es) {empty}; the class-wise index is incomplete for this fold"
        )
    # the legacy generator: the same stream as np.random.seed(seed) in the official test script
    rng = np.random.RandomState(seed)
    episodes = []
    for _ in range(num_episodes):
        cls = int(class_ids[rng.choice(len(class_ids), 1, replace=False)[0]])
        names = classwise[cls]
        episodes.append(Episode(str(names[rng.choice(len(names), 1, replace=False)[0]]), cls))
    return episodes


def episode_source(
    coco_root: str | Path,
    fold: int,
    classwise: str | Path | None = None,
    seed: int = 0,
    num_episodes: int | None = None,
    labels_file: str | Path | None = None,
) -> EpisodeSource:
    """COCO-20i episodes of ``fold``: ``num_episodes`` (default 1000) seeded draws from the class-wise lists.

    ``classwise``: an HSNet fold pickle or a TSV index (default: the one ``prepare`` wrote next to the data).
    """
    m = manifest()
    base = find_coco(coco_root)
    index = user_path(classwise) if classwise is not None else default_classwise(base)
    lists = read_classwise(index)
    classes = fold_class_ids(fold)
    names = read_label_file(labels_file, m) if labels_file is not None else list(m.classes)
    n = m.episodes_per_fold if num_episodes is None else num_episodes
    images = sorted({name for c in classes for name in lists.get(c, [])})
    return EpisodeSource(
        benchmark=NAME,
        fold=fold,
        class_names=tuple(names),
        class_ids=tuple(classes),
        episodes=tuple(sample_episodes(lists, classes, n, seed)),
        images=tuple(images),
        image_path=lambda image_rel: inside(base, image_rel, what="COCO-20i image name"),
        class_map=lambda image_rel: episode_class_map(base, image_rel),
        info={"classwise": str(index), "seed": seed, "labels_match_paper": labels_match_paper(names, m)},
    )


# ---------------------------------------------------------------- preparation


def convert_instances(base: Path, out: Path, split: str, progress: bool = True) -> dict[int, list[str]]:
    """Instances json -> ``out/annotations/<split>/<stem>.png`` class-index masks; returns the class-wise index."""
    try:
        from pycocotools.coco import COCO  # optional dependency (extra "coco")
    except ImportError:
        raise SetupError("converting COCO instances needs pycocotools: pip install 'lseg_nb[coco]'") from None
    m = manifest()
    ann_file = base / "annotations" / f"instances_{split}.json"
    try:  # plain json.loads: the duplicate-key check of read_data_file is slow on a 450 MB file
        instances = json.loads(ann_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{ann_file}: not a readable COCO instances JSON file ({e})") from None
    cats = instances.get("categories", []) if isinstance(instances, dict) else []
    got = [(int(c["id"])) for c in sorted(cats, key=lambda c: c["id"])]
    if got != list(m.category_ids):
        raise InputError(
            f"{ann_file}: categories {got[:10]}... are not the 80 COCO 2014 categories {list(m.category_ids[:10])}..."
        )
    rank = {cid: k + 1 for k, cid in enumerate(m.category_ids)}
    coco = COCO(str(ann_file))
    folder = out / "annotations" / split
    classwise: dict[int, list[str]] = {c: [] for c in range(1, NUM_CLASSES + 1)}
    for img in tqdm(
        sorted(coco.imgs.values(), key=lambda i: i["file_name"]),
        desc=f"convert {split}",
        disable=not progress,
    ):
        mask = np.zeros((img["height"], img["width"]), np.uint8)
        for ann in coco.imgToAnns.get(img["id"], []):  # json order: later annotations overwrite overlaps
            mask[coco.annToMask(ann) > 0] = rank[int(ann["category_id"])]
        stem = Path(img["file_name"]).stem
        atomic_save_png(mask, folder / f"{stem}.png")
        for c in np.unique(mask[mask > 0]).tolist():
            classwise[int(c)].append(f"{split}/{stem}.jpg")
    return classwise


def _link(link: Path, target: Path) -> None:
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)


def _check_pairs(base: Path, split: str) -> tuple[int, list[str]]:
    images = sorted(p.stem for p in (base / split).glob("*.jpg"))
    masks = {p.stem for p in (base / "annotations" / split).glob("*.png")}
    return len(images), [i for i in images if i not in masks]


def prepare(
    root: str | Path, out: str | Path | None = None, splits: str | Path | None = None, progress: bool = True
) -> list[str]:
    """Check (or convert) a local COCO 2014 copy and write the class-wise query index used by the episodes.

    Masks present (HSNet's): checked against the images in place. Masks absent but
    ``annotations/instances_<split>.json`` present: converted into ``out`` (default: in place), images linked.
    ``splits``: HSNet's ``data/splits`` (or ``.../coco``) folder; its ``val/fold<f>.pkl`` lists are converted to
    ``hsnet_classwise_val2014.tsv`` so evaluation reproduces the official episode sequence.
    """
    m = manifest()
    base = find_coco(root)
    dest = user_path(out) if out is not None else base
    lines = [f"COCO 2014: {base}"]
    for split in SPLITS:
        if not (base / split).is_dir():
            if split == "val2014":
                raise missing(
                    "COCO val2014 images", base / split, "COCO_val2014_<id>.jpg files", m.sources[split]
                )
            lines.append(f"{split}: absent (needed only for training)")
            continue
        if (base / "annotations" / split).is_dir():
            n, gone = _check_pairs(base, split)
            if gone:
                raise missing(
                    f"{len(gone)} of {n} {split} masks",
                    base / "annotations" / split / f"{gone[0]}.png",
                    f"one class-index PNG per image (first missing: {gone[:5]})",
                    m.sources[f"hsnet_masks_{split}"],
                )
            lines.append(f"{split}: {n} images with masks (checked in place)")
            if dest.resolve() != base.resolve():  # make ``dest`` a complete root that links to the data
                _link(dest / split, base / split)
                _link(dest / "annotations" / split, base / "annotations" / split)
            index_path = dest / CLASSWISE.format(split=split)
            if index_path.is_file():
                lines.append(f"kept the existing index {index_path} (delete it to rebuild from the masks)")
            else:
                write_classwise(index_path, build_classwise(base, split, progress))
        elif (base / "annotations" / f"instances_{split}.json").is_file():
            index = convert_instances(base, dest, split, progress)
            if dest.resolve() != base.resolve():
                _link(dest / split, base / split)
            write_classwise(dest / CLASSWISE.format(split=split), index)
            lines.append(
                f"{split}: masks converted from instances_{split}.json into {dest / 'annotations' / split}"
            )
        else:
            raise missing(
                f"{split} masks",
                base / "annotations" / split,
                f"HSNet's mask PNGs in annotations/{split}/, or annotations/instances_{split}.json to convert",
                f"{m.sources[f'hsnet_masks_{split}']} or {m.sources['instances']}",
            )
    if splits is not None:
        merged = read_hsnet_fold_pickles(user_path(splits))
        absent = [n for names in merged.values() for n in names if not (base / n).is_file()]
        if absent:
            raise missing(
                f"{len(absent)} images listed in HSNet's fold pickles",
                base / absent[0],
                f"every listed val2014 image (first missing: {absent[:5]})",
                m.sources["val2014"],
            )
        write_classwise(dest / HSNET_CLASSWISE.format(split="val2014"), merged)
        lines.append(f"HSNet class-wise lists converted to {dest / HSNET_CLASSWISE.format(split='val2014')}")
    lines.append(f"episode index: {default_classwise(dest)}")
    train_index = dest / CLASSWISE.format(split="train2014")
    if train_index.is_file():  # the official training epoch: distinct images of the fold's 60 seen classes
        lists = read_classwise(train_index)
        for f in range(NUM_FOLDS):
            held = set(fold_class_ids(f))
            n = len({i for c, names in lists.items() if c not in held for i in names})
            lines.append(
                f"train2014 fold {f}: {n} images of its 60 seen classes (training episodes per epoch)"
            )
    return lines
