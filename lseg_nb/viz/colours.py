"""Colours of labels: fixed per label text, so a label looks the same in every figure and run.

:func:`label_colours` decides in three steps:

1. Labels that are exactly a known dataset's classes (VOC, ADE20K-150, Cityscapes-19, CamVid-11/32; see
   :mod:`lseg_nb.viz.dataset_palettes`) get that dataset's standard palette.
2. Otherwise each label has a home colour of its own text alone: a colour word or a stuff name with a natural
   colour (:data:`WORD_COLOURS`: "green" is green, "sky" sky blue, "grass" green, "water" blue; the whole label,
   else its last word, else its first colour word, so "blue car" is blue and "green grass" is grass), or else the
   SHA-256 hash of the text into the fixed palette :data:`LABEL_HEX` of :data:`PALETTE_SIZE` colours, any two at
   least :data:`MIN_DELTA_E` apart in CIELAB (SHA-256, not Python's salted ``hash``, so it holds across processes).
3. A label keeps its home colour unless it collides: its home is within :data:`COLLISION_DELTA_E` of the home of
   a label of the same figure that ranks first (colour-table labels first, then by hash). Only then does a label
   depend on the others: it moves along its own probe sequence of the palette to the first colour at least
   :data:`MIN_DELTA_E` from every colour kept or given so far (a label with a colour word first tries lighter
   and darker shades of it, so "red dots" beside "red stripes" is a shade of red). So "sky" is the same sky blue
   in every figure unless the figure also has, say, "blue sky"; two labels of one figure never share a colour.

Void (ignored) pixels are never coloured: they keep the image (overlays) or are black in label maps -- unless a
class is black itself (VOC's background), when they take VOC's own void colour (:func:`void_colour`) -- and keys
describe them with :data:`VOID_LABEL`.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence

import numpy as np

from lseg_nb.viz.dataset_palettes import dataset_colours
from lseg_nb.viz.mpl import colormap

VOID_LABEL = "void (not scored)"
MIN_DELTA_E = 16.0
COLLISION_DELTA_E = 10.0  # closer than this, two swatches side by side read as one colour
_PROBE_STEP = 37  # coprime with PALETTE_SIZE: every slot is probed once

# Farthest-point sampling in CIELAB over a 24-step RGB grid, lightness 35..90 and chroma >= 25 (no near-black,
# near-white or grey: void is black in label maps and images are often grey), generated once and written out so
# that no library version or floating-point detail can change a label's colour.
# fmt: off
LABEL_HEX = (
    "4e00ff", "00ff00", "ff0000", "16c8f4", "6f6f00", "ff6fc8", "004ebc", "00ffbc", "ffc8b1",
    "e9e900", "9b2c2c", "ff9b16", "ff16ff", "006f59", "009b00", "907aa6", "c8e990", "ff0064",
    "9016a6", "bc90ff", "85dec8", "902c64", "439bf4", "bc7a43", "ffd3ff", "9bf44e", "6f59ff",
    "ff8590", "ff6f43", "006f90", "debc4e", "16a664", "00ff7a", "859064", "166400", "90b121",
    "f46fff", "ff00bc", "6f4390", "b10000", "9b00de", "6f4e2c", "a6646f", "a6c8ff", "ffc800",
    "d3007a", "2c599b", "6fd364", "e990bc", "00f4ff", "00a6a6", "b14e00", "e9d390", "21d321",
    "6f9b43", "ff3743", "a67a00", "4e5921", "c82c59", "bc64bc", "ffa6ff", "a61685", "85e9a6",
    "dee964", "ffb164", "6485ff", "7a4ec8", "c8b1ff", "ff9b7a", "ff6f00", "d300c8", "9be9ff",
    "64a685", "7a4e00", "c8e9bc", "00debc", "a69b4e", "e95959", "ff649b", "bc59ff", "437a43",
    "bcf400", "c8bc0b", "372ce9", "bc856f", "379bd3", "6f6fc8", "7af400", "1664f4", "59a6bc",
    "7a4e6f", "6fbc00", "e9a6b1", "a65943", "bc002c", "c8597a", "00de7a", "de43bc", "e98537",
    "9bbc7a", "4e900b", "9b9000", "bc85c8", "e9430b", "6f2cc8", "b1e96f", "bca67a", "b1d316",
    "d39b00", "bc64de", "90374e", "856f2c", "c8a6d3", "b16490", "6f85c8", "d36443", "00a643",
    "90379b", "a6bc59", "c84e90", "a60059", "ff85f4", "9b6fff", "ffde4e", "16b190", "006fd3",
    "9b2c0b", "21d390",
)
# fmt: on
PALETTE_SIZE = len(LABEL_HEX)
LABEL_PALETTE = np.array([[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for h in LABEL_HEX])
"""``(PALETTE_SIZE, 3)`` RGB in [0, 1] of :data:`LABEL_HEX`."""

# Colour words and stuff whose colour everyone expects. Hand-picked sRGB; black is dark grey and white off-white,
# because void is pure black in label maps and white vanishes on paper.
# fmt: off
WORD_COLOURS = {
    "red": "d62728", "green": "2ca02c", "blue": "1f5fd6", "yellow": "f2d21b", "orange": "ff7f0e",
    "purple": "8e44ad", "violet": "9b59d0", "pink": "ff8fc8", "brown": "8c564b", "black": "404040",
    "white": "ebebeb", "grey": "9a9a9a", "gray": "9a9a9a", "cyan": "17d4e0", "magenta": "e0218a",
    "teal": "108080", "navy": "1f2f7a", "gold": "d4a017", "beige": "e8d8b0", "lime": "a0e020",
    "maroon": "800020", "olive": "808020", "turquoise": "40e0d0", "silver": "c0c0c8",
    "sky": "87ceeb", "cloud": "dcdcea", "grass": "5cb83a", "lawn": "5cb83a", "field": "b5c85a", "tree": "2e7d32",
    "forest": "1f5f24", "plant": "4caf50", "vegetation": "4f9a3c", "foliage": "3e9a3e", "leaf": "3e9a3e",
    "leaves": "3e9a3e", "water": "2f74c0", "sea": "1c5aa0", "ocean": "1c4f9a", "river": "3a86c8",
    "lake": "3f7fbf", "sand": "e3c98a", "beach": "e3c98a", "snow": "f4f6fa", "earth": "8b6a45",
    "dirt": "8b6a45", "soil": "8b6a45", "ground": "8b6a45", "mud": "6b5033", "mountain": "8b7355",
    "rock": "8a8580", "stone": "8a8580", "wood": "9a6a3a", "fire": "ff5a00", "sun": "ffd21f",
    "road": "5a5a64", "asphalt": "5a5a64",
}
# fmt: on


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] ``(..., 3)`` -> CIELAB ``(..., 3)`` (D65), for perceptual colour distances."""
    rgb = np.asarray(rgb, dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def home_slot(label: str) -> int:
    """Palette index a label text hashes to (stable across processes, machines and runs)."""
    digest = hashlib.sha256(label.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % PALETTE_SIZE


def class_palette(n: int) -> np.ndarray:
    """``(n, 3)`` distinct RGB colours in [0, 1] by position (tab10 / tab20, evenly spaced hues beyond 20).

    For things without a label text (e.g. clusters); labelled classes use :func:`label_colours`.
    """
    if n <= 10:
        return np.asarray(colormap("tab10").colors[:n])
    if n <= 20:
        return np.asarray(colormap("tab20").colors[:n])
    # computed hues, not the 256-entry "hsv" colour map, which would repeat colours beyond n = 256
    return np.array([colorsys.hsv_to_rgb(i / n, 1.0, 1.0) for i in range(n)]).reshape(-1, 3)


def palette(n: int) -> np.ndarray:
    """:func:`class_palette` as uint8 RGB ``(n, 3)`` (for drawing into images)."""
    return (class_palette(n) * 255).round().astype(np.uint8)


def _rgb(hex_: str) -> np.ndarray:
    return np.array([int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4)])


def word_colour(label: str) -> np.ndarray | None:
    """RGB in [0, 1] of a label from :data:`WORD_COLOURS` (whole label, last word, first colour word), or None."""
    words = label.strip().lower().replace("_", " ").replace("-", " ").split()
    if not words:
        return None
    plural = [w[:-1] if w.endswith("s") and w[:-1] in WORD_COLOURS else w for w in words]
    for candidate in (" ".join(words), plural[-1]):
        if candidate in WORD_COLOURS:
            return _rgb(WORD_COLOURS[candidate])
    first = next((w for w in plural if w in WORD_COLOURS), None)
    return None if first is None else _rgb(WORD_COLOURS[first])


def _shades(rgb: np.ndarray) -> np.ndarray:
    """Lighter and darker versions of a colour-word colour, for a second "red ..." label of a figure."""
    white, black = np.ones(3), np.zeros(3)
    mixes = [(white, 0.45), (black, 0.4), (white, 0.7), (black, 0.6)]
    return np.array([(1 - t) * rgb + t * other for other, t in mixes])


def _rank(text: str) -> tuple[int, int, str]:
    digest = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return (0 if word_colour(text) is not None else 1, digest, text)


def label_colours(labels: Sequence[str], first: int | None = None) -> np.ndarray:
    """``(K, 3)`` RGB in [0, 1], one per label, fixed by each label's text (see the module docstring).

    Repeated texts get the same colour. Distinct texts always get distinct colours; with more than
    :data:`PALETTE_SIZE` distinct texts the palette cannot hold them all and positional colours
    (:func:`class_palette`) are used instead, which are distinct but not fixed per text.

    Args:
        labels: label texts, in the order of the class indices they colour.
        first: colour ``labels[:first]`` exactly as ``label_colours(labels[:first])`` would and fit the rest
            around them: a figure that adds distractor words to a run's classes keeps the classes' colours
            of every other figure of that run (unless the texts overflow the palette, as above).
    """
    texts = [str(t).strip() for t in labels]
    # more distinct texts than the palette holds: the positional fallback below, for all of them
    if first is not None and 0 < first < len(texts) and len(set(texts)) <= PALETTE_SIZE:
        base = dict(zip(texts[:first], label_colours(texts[:first])))
        colour = _fit(sorted({t for t in texts[first:] if t not in base}, key=_rank), base)
        return np.array([colour[t] for t in texts]).reshape(-1, 3)
    known = dataset_colours(texts)
    if known is not None:
        return known[1]
    unique = sorted(set(texts), key=_rank)
    if len(unique) > PALETTE_SIZE:
        by_text = dict(zip(sorted(unique), class_palette(len(unique))))
        return np.array([by_text[t] for t in texts]).reshape(-1, 3)
    colour = _fit(unique, {})
    return np.array([colour[t] for t in texts]).reshape(-1, 3)


def _fit(unique: Sequence[str], given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Colours for ``unique`` (in rank order) around the colours already ``given`` (module docstring, step 3)."""
    colour = dict(given)
    kept = [rgb_to_lab(c) for c in given.values()]  # CIELAB of the colours given so far
    moved = []
    for text in unique:  # first pass: every label whose home collides with no higher-ranked home keeps it
        home = word_colour(text)
        home = LABEL_PALETTE[home_slot(text)] if home is None else home
        lab = rgb_to_lab(home)
        if all(np.linalg.norm(lab - k) >= COLLISION_DELTA_E for k in kept):
            colour[text] = home
            kept.append(lab)
        else:
            moved.append(text)
    for text in moved:  # then the colliding ones: shades of their colour word, then their own palette probes
        word = word_colour(text)
        probes = LABEL_PALETTE[(home_slot(text) + np.arange(PALETTE_SIZE) * _PROBE_STEP) % PALETTE_SIZE]
        rgb = np.concatenate([_shades(word) if word is not None else np.zeros((0, 3)), probes, probes])
        gap = np.repeat(
            [COLLISION_DELTA_E, MIN_DELTA_E, 1e-6], [len(rgb) - 2 * PALETTE_SIZE, *[PALETTE_SIZE] * 2]
        )
        lab = rgb_to_lab(rgb)  # the last PALETTE_SIZE: a crowded figure, distinct if not far apart
        nearest = np.linalg.norm(lab[:, None] - np.array(kept)[None], axis=-1).min(axis=1)
        pick = int(np.flatnonzero(nearest >= gap)[0])
        colour[text] = rgb[pick]
        kept.append(lab[pick])
    return colour


def label_palette(labels: Sequence[str]) -> np.ndarray:
    """:func:`label_colours` as uint8 RGB ``(K, 3)`` (for drawing into images)."""
    return (label_colours(labels) * 255).round().astype(np.uint8)


VOC_VOID_RGB = np.array([224, 224, 192]) / 255  # VOC's colour of void (object boundaries) in its label PNGs


def void_colour(colours: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of void pixels in a label map of ``colours``: black, or VOC's void cream if a class is black.

    Args:
        colours: ``(K, 3)`` class colours, uint8 or in [0, 1].
    """
    rgb = np.asarray(colours, dtype=float).reshape(-1, 3)
    rgb = rgb / 255 if rgb.max(initial=0) > 1 else rgb
    black = rgb.size and bool((rgb.max(axis=1) < 0.1).any())
    return VOC_VOID_RGB if black else np.zeros(3)


def hex_colour(rgb: Sequence[float]) -> str:
    """RGB in [0, 1] -> ``#rrggbb``."""
    r, g, b = (int(round(float(c) * 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"
