"""FSS-1000: class folders of ``<n>.jpg`` + ``<n>.png`` pairs, HSNet's 520/240/240 class split.

Layout (HSNet's ``Datasets_HSN/FSS-1000``; checked in place)::

    FSS-1000/<class>/<n>.jpg   RGB image (n = 1..10)
    FSS-1000/<class>/<n>.png   mask: grey value >= 128 is the class, the rest background

Class ids follow the label file ``fewshot_fss.txt`` = sorted(trn) + sorted(val) + sorted(test): the 240 unseen
test classes are ids 761..1000 (the official loader: ``sorted(test.txt).index(class) + 760``, 0-based). The
official zero-shot command runs with ``--nshot 0``, so every ``.jpg`` of every test class is one episode (2400 on
the full data set, no sampling, no cap).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lseg_nb.data.benchmarks.base import (
    IGNORE,
    BenchmarkManifest,
    Episode,
    EpisodeSource,
    check_split_file,
    labels_match_paper,
    load_benchmark_manifest,
    missing,
    read_label_file,
)
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import inside, user_path

NAME = "fss1000"
NUM_CLASSES = 1000
MASK_THRESHOLD = 128  # official read_mask: convert('L'), >= 128 -> 1


def manifest() -> BenchmarkManifest:
    """The FSS-1000 benchmark manifest."""
    return load_benchmark_manifest(NAME)


def test_class_ids() -> list[int]:
    """The 240 unseen test classes (1-based ids 761..1000 of the label file)."""
    return manifest().fold_class_ids(0)


def find_fss(root: str | Path) -> Path:
    """The folder holding the class folders: ``root``, ``root/FSS-1000`` or ``root/fewshot_data``."""
    root = user_path(root)
    probe = manifest().folds[0][1][0]  # a test class folder, or a training one (a training-only copy)
    for base in (root, root / "FSS-1000", root / "fewshot_data"):
        if (base / probe).is_dir() or (base / manifest().classes[0]).is_dir():
            return base
    raise missing(
        "FSS-1000 class folders",
        root / "FSS-1000" / probe,
        f"<class>/<n>.jpg + <n>.png folders in {root} or {root}/FSS-1000",
        manifest().sources["images_and_masks"],
    )


def read_foreground(base: Path, image_id: str) -> np.ndarray:
    """Mask of ``<class>/<n>`` as bool ``(H, W)``: grey >= 128 (the official ``read_mask``)."""
    path = inside(base, f"{image_id}.png", what="FSS-1000 image id")
    if not path.is_file():
        raise missing(
            f"mask of {image_id}",
            path,
            "the .png mask next to the .jpg",
            manifest().sources["images_and_masks"],
        )
    with Image.open(path) as m:
        return np.array(m.convert("L")) >= MASK_THRESHOLD


def read_class_map(base: Path, image_id: str, class_id: int) -> np.ndarray:
    """Mask of ``<class>/<n>`` as int64 ``(H, W)``: ``class_id`` where grey >= 128, else 0."""
    if class_id == IGNORE:  # class maps mark void with 255; no FSS-1000 test class has this id
        raise InputError(f"FSS-1000 class id {class_id} collides with the void value {IGNORE}")
    return np.where(read_foreground(base, image_id), class_id, 0).astype(np.int64)


def list_episodes(base: Path, class_ids: list[int], names: tuple[str, ...]) -> list[Episode]:
    """Every ``.jpg`` of every class folder in ``class_ids`` (sorted), one episode each."""
    episodes = []
    for c in class_ids:
        folder = base / names[c - 1]
        if not folder.is_dir():
            raise missing(
                f"FSS-1000 class folder {names[c - 1]!r}",
                folder,
                "<n>.jpg + <n>.png",
                manifest().sources["images_and_masks"],
            )
        jpgs = sorted(folder.glob("*.jpg"))
        if not jpgs:
            raise missing(
                f"images of FSS-1000 class {names[c - 1]!r}",
                folder / "1.jpg",
                "<n>.jpg files",
                manifest().sources["images_and_masks"],
            )
        episodes += [Episode(f"{names[c - 1]}/{p.stem}", c) for p in jpgs]
    return episodes


def episode_source(
    fss_root: str | Path, labels_file: str | Path | None = None, max_classes: int | None = None
) -> EpisodeSource:
    """FSS-1000 test episodes (the single "fold"): every image of the 240 test classes once.

    Folders are found by the paper's class names (the manifest), whatever ``labels_file`` says; ``labels_file``
    only changes the texts given to the model. ``max_classes`` keeps the first N test classes (quick runs).
    """
    m = manifest()
    base = find_fss(fss_root)
    names = read_label_file(labels_file, m) if labels_file is not None else list(m.classes)
    classes = test_class_ids()[:max_classes]
    episodes = list_episodes(base, classes, m.classes)
    by_folder = {m.classes[c - 1]: c for c in classes}
    return EpisodeSource(
        benchmark=NAME,
        fold=0,
        class_names=tuple(names),
        class_ids=tuple(classes),
        episodes=tuple(episodes),
        images=tuple(e.image_id for e in episodes),
        image_path=lambda image_id: inside(base, f"{image_id}.jpg", what="FSS-1000 image id"),
        class_map=lambda image_id: read_class_map(base, image_id, by_folder[image_id.rsplit("/", 1)[0]]),
        info={"labels_match_paper": labels_match_paper(names, m)},
    )


def prepare(root: str | Path, out: str | Path | None = None, splits: str | Path | None = None) -> list[str]:
    """Check a local FSS-1000 copy in place: every test class folder has ``.jpg`` images with ``.png`` masks.

    ``splits``: HSNet's ``data/splits`` (or ``.../fss``) folder; its three lists are checked against the sha256.
    """
    if out is not None:
        raise InputError("FSS-1000 is used in place (<class>/<n>.jpg + <n>.png); drop --out")
    m = manifest()
    base = find_fss(root)
    episodes = list_episodes(base, test_class_ids(), m.classes)
    gone = [e.image_id for e in episodes if not (base / f"{e.image_id}.png").is_file()]
    if gone:
        raise missing(
            f"{len(gone)} FSS-1000 test masks",
            base / f"{gone[0]}.png",
            f"a .png mask per .jpg (first missing: {gone[:5]})",
            m.sources["images_and_masks"],
        )
    lines = [
        f"FSS-1000: {base}",
        f"test: 240 classes, {len(episodes)} images with masks (the official run: 2400)",
    ]
    test = set(m.folds[0][1])
    present = sum((base / n).is_dir() for n in m.classes if n not in test)
    lines.append(
        f"train/val classes: {present} of {len(m.classes) - len(test)} folders present (needed only for training)"
    )
    if splits is not None:
        for split in ("trn", "val", "test"):
            cand = [user_path(splits) / "fss" / f"{split}.txt", user_path(splits) / f"{split}.txt"]
            path = next((p for p in cand if p.is_file()), cand[0])
            check_split_file(path, m, f"fss/{split}.txt")
        lines.append("split lists trn/val/test match the published sha256")
    return lines
