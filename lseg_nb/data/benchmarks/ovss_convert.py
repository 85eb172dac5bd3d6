"""The one conversion the suites need that no release ships: COCO-Object labels from the COCO-Stuff maps.

The training-free harnesses score COCO-Object on ``*_instanceTrainIds.png`` written by ``cvt_coco_object.py``
(wangf3014/SCLIP@b56bd30 ``datasets/cvt_coco_object.py``, from GroupViT): it reads each COCO-Stuff-164k map
(``annotations/val2017/<id>.png``: 0-based COCO category id ``id - 1`` for the 80 things, 91..181 for stuff, 255
unlabelled) and writes thing ``k`` as its position among the 80 thing ids plus one (1..80), every stuff value as 0
(background) -- and, because its loop also rewrites key 255 (``if k > 90: 0``), unlabelled pixels as background
too, so COCO-Object has no void pixels. :func:`convert_coco_object` writes the same files (values not in the
reference table, which the COCO-Stuff maps never hold, are refused rather than copied through).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from lseg_nb.data.benchmarks.base import load_benchmark_manifest, missing
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import atomic_save_png, user_path

STUFF_SUFFIX = ".png"
OBJECT_SUFFIX = "_instanceTrainIds.png"


def coco_object_table() -> np.ndarray:
    """``(256,)`` int16 lookup: COCO-Stuff map value -> COCO-Object label; -1 where the reference has no entry."""
    things = load_benchmark_manifest("coco20i").category_ids  # the 80 COCO thing category ids, in order
    lut = np.full(256, -1, np.int16)
    for position, cat_id in enumerate(things):
        lut[cat_id - 1] = position + 1
    lut[91:182] = 0  # stuff -> background
    lut[255] = 0  # unlabelled -> background, as the reference loop does
    return lut


def convert_stuff_map(stuff: np.ndarray, where: str = "map") -> np.ndarray:
    """One COCO-Stuff map -> its COCO-Object labels (uint8: 0 background, 1..80 things)."""
    values = stuff.astype(np.int64)
    if values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise InputError(f"{where}: values outside 0..255: not a COCO-Stuff class map")
    out = coco_object_table()[values]
    if (out < 0).any():
        bad = np.unique(values[out < 0])[:8].tolist()
        raise InputError(
            f"{where}: values {bad} are no COCO-Stuff class: expected stuffthingmaps_trainval2017 PNGs"
        )
    return out.astype(np.uint8)


def convert_coco_object(root: str | Path, out: str | Path | None = None, progress: bool = True) -> list[str]:
    """Write ``<out>/annotations/val2017/<id>_instanceTrainIds.png`` for every COCO-Stuff map
    ``<root>/annotations/val2017/<id>.png`` (``out`` default: ``root``; existing outputs are kept)."""
    src = user_path(root) / "annotations" / "val2017"
    maps = sorted(p for p in src.glob(f"*{STUFF_SUFFIX}") if not p.name.endswith("TrainIds.png"))
    if not maps:
        raise missing(
            "COCO-Stuff val2017 maps",
            src,
            "<id>.png class maps (stuffthingmaps_trainval2017.zip unpacked into annotations/)",
            "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/stuffthingmaps_trainval2017.zip",
        )
    dest = user_path(out or root) / "annotations" / "val2017"
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in tqdm(maps, desc="COCO-Object labels", disable=not progress):
        target = dest / f"{path.stem}{OBJECT_SUFFIX}"
        if target.is_file():
            continue
        with Image.open(path) as im:
            labels = convert_stuff_map(np.array(im), str(path))
        atomic_save_png(labels, target)
        written += 1
    return [f"COCO-Object labels: {written} written, {len(maps) - written} already present, in {dest}"]
