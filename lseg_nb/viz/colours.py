"""Colours of labels: fixed per label text, so a label looks the same in every figure and run.

:func:`label_colours` hashes each label's text (SHA-256, independent of Python's per-process hash seed) into the
fixed palette :data:`LABEL_HEX` of :data:`PALETTE_SIZE` colours, any two of which are at least
:data:`MIN_DELTA_E` apart in CIELAB (so they are told apart side by side). Inside one figure two labels never share
a colour: when a label's home slot is taken, it moves to the next free slot of its own probe sequence. Labels are
placed in sorted text order, so the result depends on the set of labels, not on their order; a label keeps its
home colour unless another label of the same figure hashes to the same slot (for 23 labels, about 2 of them move).
Void (ignored) pixels are never coloured: they keep the image (overlays) or are black (label maps), and keys
describe them with :data:`VOID_LABEL`.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence

import numpy as np

from lseg_nb.viz.mpl import colormap

VOID_LABEL = "void (not scored)"
MIN_DELTA_E = 16.0
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


def label_colours(labels: Sequence[str]) -> np.ndarray:
    """``(K, 3)`` RGB in [0, 1], one per label, fixed by each label's text (see the module docstring).

    Repeated texts get the same colour. Distinct texts always get distinct colours; with more than
    :data:`PALETTE_SIZE` distinct texts the palette cannot hold them all and positional colours
    (:func:`class_palette`) are used instead, which are distinct but not fixed per text.
    """
    texts = [str(t).strip() for t in labels]
    unique = sorted(set(texts))
    if len(unique) > PALETTE_SIZE:
        by_text = dict(zip(unique, class_palette(len(unique))))
        return np.array([by_text[t] for t in texts]).reshape(-1, 3)
    taken: set[int] = set()
    slot_of: dict[str, int] = {}
    for text in unique:
        probes = ((home_slot(text) + i * _PROBE_STEP) % PALETTE_SIZE for i in range(PALETTE_SIZE))
        slot_of[text] = next(p for p in probes if p not in taken)
        taken.add(slot_of[text])
    return LABEL_PALETTE[[slot_of[t] for t in texts]].reshape(-1, 3)


def label_palette(labels: Sequence[str]) -> np.ndarray:
    """:func:`label_colours` as uint8 RGB ``(K, 3)`` (for drawing into images)."""
    return (label_colours(labels) * 255).round().astype(np.uint8)


def hex_colour(rgb: Sequence[float]) -> str:
    """RGB in [0, 1] -> ``#rrggbb``."""
    r, g, b = (int(round(float(c) * 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"
