"""The embedded offline dataset ``synthetic_textures``: colour x texture regions with text-meaningful names.

16 classes ``"<colour> <pattern>"`` (colours red/green/blue/yellow x patterns stripes/dots/checks/plain; index
``4 * colour + pattern``). Each image is a Voronoi partition into 2-4 cells plus 0-2 rectangles/ellipses, each
region a distinct class, filled with its colour (per-region brightness/tint jitter) and pattern (random
orientation, period and phase), plus pixel noise. Labels hold the class index of every pixel: there are no void
pixels (``ignore_index`` 255 is unused). Generation is seeded per image (``seed``, split, index), so output is
bit-identical for the same parameters and independent of generation order.

Written in the plain layout read by :class:`~lseg_nb.data.datasets.SegmentationDataset` (manifest
``data_manifests/synthetic_textures.yaml``); default root :func:`default_synthetic_root`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from lseg_nb.data.manifests import cache_dir
from lseg_nb.utils.io import atomic_write_text

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.14, 0.12),
    "green": (0.16, 0.66, 0.20),
    "blue": (0.14, 0.30, 0.90),
    "yellow": (0.94, 0.84, 0.14),
}
PATTERNS: tuple[str, ...] = ("stripes", "dots", "checks", "plain")
CLASS_NAMES: tuple[str, ...] = tuple(f"{c} {p}" for c in COLOURS for p in PATTERNS)
SPLITS: tuple[str, ...] = ("train", "val", "test")
PARAMS_FILE = "synthetic_params.json"
GENERATOR_VERSION = 1
_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}


def default_synthetic_root() -> Path:
    """Default folder of the generated set: ``$LSEG_NB_CACHE/synthetic_textures`` (cache ``~/.cache/lseg_nb``)."""
    return cache_dir() / "synthetic_textures"


def _rotated(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle and shifted by a random phase."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0.0, math.pi)
    c, s = math.cos(theta), math.sin(theta)
    off = rng.uniform(0.0, 32.0, size=2)
    return xx * c + yy * s + off[0], -xx * s + yy * c + off[1]


def pattern_mask(pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (size, size) map of a pattern's second tone (all False for ``plain``)."""
    if pattern == "plain":
        return np.zeros((size, size), dtype=bool)
    u, v = _rotated(size, rng)
    if pattern == "stripes":
        period = rng.uniform(8.0, 14.0)
        return (u / period) % 1.0 < 0.5
    if pattern == "dots":
        period = rng.uniform(10.0, 15.0)
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        return du * du + dv * dv < (rng.uniform(0.25, 0.35) * period) ** 2
    if pattern == "checks":
        cell = rng.uniform(6.0, 10.0)
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    raise ValueError(f"unknown pattern {pattern!r}; known patterns: {PATTERNS}")


def _fill(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Full-image (size, size, 3) float texture of class ``cls`` with per-region colour jitter."""
    colour_name, pattern = CLASS_NAMES[cls].split(" ")
    base = np.array(COLOURS[colour_name], dtype=np.float32)
    base = np.clip(base * rng.uniform(0.85, 1.1) + rng.normal(0.0, 0.04, 3), 0.0, 1.0).astype(np.float32)
    dark = base * rng.uniform(0.25, 0.45)
    if pattern == "plain":
        # a gentle linear shading so "plain" means untextured, not perfectly flat
        u, _ = _rotated(size, rng)
        shade = 1.0 + 0.1 * (u - u.mean()) / (np.ptp(u) + 1e-6)
        return np.clip(base[None, None] * shade[..., None], 0.0, 1.0)
    mask = pattern_mask(pattern, size, rng)
    return np.where(mask[..., None], dark[None, None], base[None, None])


def _layout(size: int, n_cells: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Region masks: Voronoi cells, then rectangles/ellipses on top (later masks overwrite earlier ones)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pts = rng.uniform(0, size, size=(n_cells, 2)).astype(np.float32)
    d = (xx[None] - pts[:, 0, None, None]) ** 2 + (yy[None] - pts[:, 1, None, None]) ** 2
    owner = d.argmin(0)
    masks = [owner == k for k in range(n_cells)]
    for _ in range(rng.integers(0, 3)):
        cx, cy = rng.uniform(0.15 * size, 0.85 * size, 2)
        rx, ry = rng.uniform(0.12 * size, 0.3 * size, 2)
        if rng.random() < 0.5:
            masks.append((np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry))
        else:
            t = rng.uniform(0, math.pi)
            u = (xx - cx) * math.cos(t) + (yy - cy) * math.sin(t)
            v = -(xx - cx) * math.sin(t) + (yy - cy) * math.cos(t)
            masks.append((u / rx) ** 2 + (v / ry) ** 2 < 1.0)
    return masks


def make_sample(seed: int, split: str, index: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Image ``uint8 (size, size, 3)`` and label ``uint8 (size, size)`` of one generated sample.

    The class of the first region cycles with ``index`` so every class occurs once ``n >= 16``.
    """
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index])
    masks = _layout(size, int(rng.integers(2, 5)), rng)
    n = len(CLASS_NAMES)
    first = index % n
    others = [c for c in rng.permutation(n).tolist() if c != first]
    classes = [first, *others[: len(masks) - 1]]
    image = np.zeros((size, size, 3), dtype=np.float32)
    label = np.zeros((size, size), dtype=np.uint8)
    for cls, mask in zip(classes, masks, strict=True):
        image[mask] = _fill(cls, size, rng)[mask]
        label[mask] = cls
    image += rng.normal(0.0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), label


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _write_set(root: Path, seed: int, counts: dict[str, int], size: int, params: dict) -> None:
    for sub in ("images", "labels", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, n in counts.items():
        ids = [f"{split}_{i:04d}" for i in range(n)]
        for i, id_ in enumerate(ids):
            image, label = make_sample(seed, split, i, size)
            Image.fromarray(image).save(root / "images" / f"{id_}.png")
            Image.fromarray(label).save(root / "labels" / f"{id_}.png")
        atomic_write_text(root / "splits" / f"{split}.txt", "\n".join(ids) + "\n")
    atomic_write_text(root / "classes.txt", "\n".join(CLASS_NAMES) + "\n")
    atomic_write_text(root / PARAMS_FILE, json.dumps(params, indent=2) + "\n")


def _move_into_place(tmp: Path, root: Path, want: dict) -> None:
    """Rename the finished set ``tmp`` to ``root``; if another process got there first with the same set, keep
    theirs; a set with other parameters is swapped out (renamed away, then deleted)."""
    try:
        os.rename(tmp, root)  # succeeds when root is missing or an empty folder
        return
    except OSError:
        pass
    if _read_marker(root / PARAMS_FILE) == want:
        return
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    os.rename(root, old)
    os.rename(tmp, root)
    shutil.rmtree(old, ignore_errors=True)


def generate_synthetic(
    root: str | Path | None = None,
    seed: int = 0,
    n_train: int = 200,
    n_val: int = 40,
    n_test: int = 80,
    size: int = 96,
) -> Path:
    """Write the synthetic set (images/, labels/, classes.txt, splits/) under ``root`` and return ``root``.

    ``root=None`` uses :func:`default_synthetic_root`. Idempotent: a folder already generated with the same
    parameters (recorded in ``synthetic_params.json``) is left alone; one generated with other parameters is
    replaced as a whole; a non-empty folder not made by this function is refused. The set is written to a
    temporary sibling folder and renamed into place, so readers never see a partial set.
    """
    root = Path(root).expanduser() if root is not None else default_synthetic_root()
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if size < 16 or any(n < 1 for n in counts.values()):
        raise ValueError(
            f"generate_synthetic needs size >= 16 and at least 1 image per split, got {counts}, {size}"
        )
    params = {"generator": "lseg_nb.data.synthetic", "version": GENERATOR_VERSION, "seed": seed, "size": size}
    params.update({f"n_{k}": v for k, v in counts.items()})
    want = {**params, "complete": True}
    marker = root / PARAMS_FILE
    if marker.is_file():
        if _read_marker(marker) == want:
            return root
    elif root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} is not empty and was not made by generate_synthetic (no {PARAMS_FILE}); choose another root"
        )
    # Build the whole set in a private sibling folder and move it into place with one rename, so concurrent
    # processes (parallel notebooks, test runs) never read or delete a half-written set.
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        _write_set(tmp, seed, counts, size, want)
        _move_into_place(tmp, root, want)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
