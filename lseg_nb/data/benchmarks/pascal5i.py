"""PASCAL-5i: VOC 2012 images + SBD-augmented masks (``SegmentationClassAug``), HSNet episode lists.

Layout (checked in place; nothing is converted)::

    VOC2012/JPEGImages/<voc_id>.jpg
    VOC2012/SegmentationClassAug/<voc_id>.png     0 background, 1..20 VOC order, 255 boundary (ignored)
    <splits>/pascal/{trn,val}/fold<f>.txt         HSNet lists, ``<voc_id>__<class_id>`` per line

Fold ``f`` holds out classes ``5f+1 .. 5f+5``. The official (LSeg copy of the HSNet) loader serves 1000 episodes
per fold on the test split, cycling through ``val/fold<f>.txt`` (346/451/725/346 lines), so entries of
each sorted list are scored one to three times (HSNet ``data/pascal.py``, ``DatasetPASCAL.__len__`` and
``__getitem__``: ``idx %= len(self.img_metadata)``); lseg_nb serves the same 1000.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from lseg_nb.data.benchmarks.base import (
    BenchmarkManifest,
    Episode,
    EpisodeSource,
    check_split_file,
    cycle_episodes,
    labels_match_paper,
    load_benchmark_manifest,
    missing,
    read_label_file,
)
from lseg_nb.data.manifests import file_sha256, shared_dir
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import inside, user_path

NAME = "pascal5i"
NUM_CLASSES = 20
NUM_FOLDS = 4


def manifest() -> BenchmarkManifest:
    """The PASCAL-5i benchmark manifest."""
    return load_benchmark_manifest(NAME)


def fold_class_ids(fold: int) -> list[int]:
    """Unseen classes of fold ``fold`` (1-based VOC ids ``5f+1 .. 5f+5``, from the manifest)."""
    return manifest().fold_class_ids(fold)


def read_episodes(path: str | Path) -> list[Episode]:
    """Parse an HSNet list (one ``<voc_image_id>__<class_id>`` per line, e.g. ``2007_000033__01``)."""
    path = user_path(path)
    if not path.is_file():
        raise missing(
            "episode list",
            path,
            "an HSNet list such as splits/pascal/val/fold0.txt",
            manifest().sources["split_lists"],
        )
    episodes = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        image_id, sep, cls = line.strip().rpartition("__")
        if not sep or not image_id or not cls.isdigit() or not 1 <= int(cls) <= NUM_CLASSES:
            raise InputError(f"{path}:{lineno}: expected '<voc_image_id>__<class_id 01..20>', got {line!r}")
        episodes.append(Episode(image_id, int(cls)))
    if not episodes:
        raise InputError(f"episode list {path} is empty")
    return episodes


def find_voc(root: str | Path) -> tuple[Path, Path]:
    """``(JPEGImages, masks)`` folders under ``root``, ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``.

    Masks: ``SegmentationClassAug`` (SBD-augmented, as the official code) or else ``SegmentationClass``.
    """
    root = user_path(root)
    if not root.is_dir():
        raise missing("PASCAL VOC root", root, "a folder holding VOC2012/", manifest().sources["voc2012"])
    for base in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        images = base / "JPEGImages"
        masks = next(
            (base / m for m in ("SegmentationClassAug", "SegmentationClass") if (base / m).is_dir()), None
        )
        if images.is_dir() and masks is not None:
            return images, masks
    raise missing(
        "PASCAL VOC layout",
        root / "VOC2012" / "SegmentationClassAug",
        f"JPEGImages/ and SegmentationClassAug/ (or SegmentationClass/) in {root}, {root}/VOC2012 or "
        f"{root}/VOCdevkit/VOC2012",
        f"{manifest().sources['voc2012']} (images) and {manifest().sources['segmentation_class_aug']} (masks)",
    )


def find_split_dir(splits: str | Path | None, root: str | Path | None = None) -> Path:
    """The HSNet ``pascal/`` list folder (holding ``{trn,val}/fold<f>.txt``) found from ``splits`` (``data/splits``,
    ``data/splits/pascal`` or its ``val/``), else ``<root>/splits``, else ``$LSEG_NB_SHARED/reference/splits``."""
    candidates = [user_path(splits)] if splits is not None else []
    if splits is None:
        candidates += [user_path(root) / "splits"] if root is not None else []
        candidates += [shared_dir() / "reference" / "splits"]
    for cand in candidates:
        for base in (cand / "pascal", cand, cand.parent):  # splits/, splits/pascal/ or splits/pascal/val/
            if (base / "val" / "fold0.txt").is_file():
                return base
    raise missing(
        "PASCAL-5i split lists",
        candidates[0] / "pascal" / "val" / "fold0.txt",
        f"pascal/val/fold0.txt .. fold3.txt under one of {[str(c) for c in candidates]} (pass --splits)",
        manifest().sources["split_lists"],
    )


def read_class_map(masks: Path, image_id: str) -> np.ndarray:
    """VOC class-index mask of ``image_id`` as int64 ``(H, W)`` (0 background, 1..20, 255 boundary)."""
    path = inside(masks, f"{image_id}.png", what="PASCAL-5i image id")
    if not path.is_file():
        raise missing(
            f"mask of {image_id}", path, "a class-index PNG", manifest().sources["segmentation_class_aug"]
        )
    with Image.open(path) as m:
        label = np.array(m)
    if label.ndim != 2:
        raise InputError(f"{path} is not a class-index PNG (shape {label.shape}); use SegmentationClassAug")
    return label.astype(np.int64)


def episode_source(
    voc_root: str | Path,
    fold: int,
    split_dir: str | Path,
    labels_file: str | Path | None = None,
    num_episodes: int | None = None,
) -> EpisodeSource:
    """PASCAL-5i episodes of ``fold`` from ``split_dir/fold<fold>.txt`` (the HSNet ``val`` folder).

    ``labels_file``: the 20 label texts (default: the paper's, from the manifest). ``num_episodes``: served
    episodes, cycling through the list (default 1000, the official loader's count).
    """
    m = manifest()
    list_path = user_path(split_dir) / f"fold{fold}.txt"
    listed = read_episodes(list_path)
    classes = fold_class_ids(fold)
    foreign = [e for e in listed if e.class_id not in classes]
    if foreign:
        raise InputError(f"{list_path} lists classes outside fold {fold} ({classes}), e.g. {foreign[0]}")
    names = read_label_file(labels_file, m) if labels_file is not None else list(m.classes)
    images, masks = find_voc(voc_root)
    sha = file_sha256(list_path)
    official = {s.sha256 for s in m.split_lists if s.relpath == f"pascal/val/fold{fold}.txt"}
    return EpisodeSource(
        benchmark=NAME,
        fold=fold,
        class_names=tuple(names),
        class_ids=tuple(classes),
        episodes=tuple(cycle_episodes(listed, num_episodes, m.episodes_per_fold)),
        images=tuple(dict.fromkeys(e.image_id for e in listed)),
        image_path=lambda image_id: inside(images, f"{image_id}.jpg", what="PASCAL-5i image id"),
        class_map=lambda image_id: read_class_map(masks, image_id),
        info={
            "split_list": str(list_path),
            "split_list_sha256": sha,
            "split_list_is_official": sha in official,
            "labels_match_paper": labels_match_paper(names, m),
        },
    )


def _ids_missing(folder: Path, ids: list[str], suffix: str) -> list[str]:
    present = {p[: -len(suffix)] for p in os.listdir(folder) if p.endswith(suffix)}
    return [i for i in ids if i not in present]


def prepare(root: str | Path, out: str | Path | None = None, splits: str | Path | None = None) -> list[str]:
    """Check a local PASCAL-5i copy in place: VOC folders, the 8 HSNet lists (sha256) and the listed files.

    Every image and mask of the ``val`` lists (evaluation) must exist; missing ``trn`` files (needed only for
    training) are reported, not fatal. Returns summary lines; raises
    :class:`~lseg_nb.data.benchmarks.base.MissingDataError` naming what is missing.
    """
    if out is not None:
        raise InputError("PASCAL-5i is used in place (VOC2012/JPEGImages + SegmentationClassAug); drop --out")
    m = manifest()
    images, masks = find_voc(root)
    if masks.name != "SegmentationClassAug":
        raise missing(
            "SBD-augmented masks",
            masks.parent / "SegmentationClassAug",
            "SegmentationClassAug/ (the official code reads it; SegmentationClass/ lacks the SBD masks)",
            m.sources["segmentation_class_aug"],
        )
    split_dir = find_split_dir(splits, root)
    lines = [f"images: {images}", f"masks: {masks}", f"split lists: {split_dir}"]
    for split in ("val", "trn"):
        ids: list[str] = []
        for f in range(NUM_FOLDS):
            check_split_file(split_dir / split / f"fold{f}.txt", m, f"pascal/{split}/fold{f}.txt")
            ids += [e.image_id for e in read_episodes(split_dir / split / f"fold{f}.txt")]
        ids = list(dict.fromkeys(ids))
        for folder, suffix, what in ((images, ".jpg", "images"), (masks, ".png", "masks")):
            gone = _ids_missing(folder, ids, suffix)
            if gone and split == "val":
                raise missing(
                    f"{len(gone)} of {len(ids)} {what} listed in val/fold*.txt",
                    folder / f"{gone[0]}{suffix}",
                    f"{what} for every listed VOC id (first missing: {gone[:5]})",
                    m.sources["segmentation_class_aug" if what == "masks" else "voc2012"],
                )
            if gone:
                lines.append(f"trn: {len(gone)} of {len(ids)} {what} missing (needed only for training)")
        lines.append(f"{split}: 4 lists match the published sha256; {len(ids)} listed images checked")
    return lines
