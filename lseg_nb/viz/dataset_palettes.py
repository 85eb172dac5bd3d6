"""Standard label colours of known datasets, as data, each with its source.

A figure whose labels are exactly one dataset's classes (in any order; the background/void entry may be left out)
is drawn in that dataset's own palette, so it reads like the dataset's published figures; any other label set is
coloured by text (:func:`lseg_nb.viz.colours.label_colours`). Matching compares label texts loosely (case, ``_``,
``-`` and spaces ignored, the first synonym of ``"sofa|couch"``, aliases such as ``motorbike`` for ``motorcycle``)
and the first word too, so the one-word names of our manifests (``chest`` for ``chest of drawers``) match.
When the labels match in the dataset's index order, colours go by position (ADE20K has two classes both called
``screen``, which then keep their two colours); otherwise by name, which needs every name to be unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PALETTES", "DatasetPalette", "dataset_colours", "label_key"]


@dataclass(frozen=True)
class DatasetPalette:
    """A dataset's classes in index order, each ``("name|alias|...", "rrggbb")``; ``optional`` names the
    entries (background, void) a label set may leave out and still be this dataset's."""

    name: str
    source: str
    entries: tuple[tuple[str, str], ...]
    optional: tuple[str, ...] = ()

    def names(self) -> list[list[str]]:
        """Per entry, its accepted keys (:func:`label_key` of the name and its aliases)."""
        return [[label_key(n) for n in name.split("|")] for name, _ in self.entries]

    def rgb(self) -> np.ndarray:
        """``(N, 3)`` RGB in [0, 1] in index order."""
        return np.array([[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for _, h in self.entries])


def label_key(text: str) -> str:
    """Text compared across label sets: lower case, first synonym, no ``_``/``-``/spaces."""
    first = str(text).split("|")[0].split(",")[0]
    return re.sub(r"[\s_\-]+", "", first.strip().lower())


def _first_word(text: str) -> str:
    words = re.split(r"[\s_\-]+", str(text).split("|")[0].split(",")[0].strip().lower())
    return words[0] if words else ""


# fmt: off
VOC21 = DatasetPalette(
    "PASCAL VOC 2012 (21 classes)",
    "VOCdevkit VOCcode/VOClabelcolormap.m (bit-interleaved colour map of the PASCAL VOC 2012 development kit)",
    (
        ("background", "000000"), ("aeroplane|airplane|plane", "800000"), ("bicycle|bike", "008000"),
        ("bird", "808000"), ("boat|ship", "000080"), ("bottle", "800080"), ("bus", "008080"), ("car", "808080"),
        ("cat", "400000"), ("chair", "c00000"), ("cow", "408000"), ("diningtable|table", "c08000"),
        ("dog", "400080"), ("horse", "c00080"), ("motorbike|motorcycle", "408080"), ("person|people", "c08080"),
        ("pottedplant|plant", "004000"), ("sheep", "804000"), ("sofa|couch", "00c000"), ("train", "80c000"),
        ("tvmonitor|tv|monitor|television", "004080"),
    ),
    optional=("background",),
)

CITYSCAPES19 = DatasetPalette(
    "Cityscapes (19 train ids)",
    "cityscapesScripts, cityscapesscripts/helpers/labels.py (colour of each label with trainId 0..18)",
    (
        ("road", "804080"), ("sidewalk", "f423e8"), ("building", "464646"), ("wall", "66669c"),
        ("fence", "be9999"), ("pole", "999999"), ("traffic light", "faaa1e"), ("traffic sign", "dcdc00"),
        ("vegetation", "6b8e23"), ("terrain", "98fb98"), ("sky", "4682b4"), ("person|pedestrian", "dc143c"),
        ("rider", "ff0000"), ("car", "00008e"), ("truck", "000046"), ("bus", "003c64"), ("train", "005064"),
        ("motorcycle|motorbike", "0000e6"), ("bicycle|bike", "770b20"),
    ),
)

CAMVID11 = DatasetPalette(
    "CamVid (11 classes, SegNet)",
    "alexgkendall/SegNet-Tutorial, Scripts/test_segmentation_camvid.py (label_colours)",
    (
        ("sky", "808080"), ("building", "800000"), ("pole|column pole", "c0c080"), ("road", "804080"),
        ("pavement|sidewalk", "3c28de"), ("tree", "808000"), ("signsymbol|sign", "c08080"),
        ("fence", "404080"), ("car", "400080"), ("pedestrian", "404000"), ("bicyclist|cyclist", "0080c0"),
    ),
)

CAMVID32 = DatasetPalette(
    "CamVid (32 classes)",
    "CamVid label_colors.txt (Brostow, Fauqueur and Cipolla 2009, http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/)",
    (
        ("animal", "408040"), ("archway", "c00080"), ("bicyclist", "0080c0"), ("bridge", "008040"),
        ("building", "800000"), ("car", "400080"), ("cartluggagepram", "4000c0"), ("child", "c08040"),
        ("column pole|pole", "c0c080"), ("fence", "404080"), ("lanemkgsdriv", "8000c0"),
        ("lanemkgsnondriv", "c00040"), ("misc text", "808040"), ("motorcyclescooter", "c000c0"),
        ("othermoving", "804040"), ("parkingblock", "40c080"), ("pedestrian", "404000"), ("road", "804080"),
        ("roadshoulder", "8080c0"), ("sidewalk", "0000c0"), ("signsymbol", "c08080"), ("sky", "808080"),
        ("suvpickuptruck", "4080c0"), ("trafficcone", "000040"), ("trafficlight", "004040"), ("train", "c04080"),
        ("tree", "808000"), ("truck bus", "c080c0"), ("tunnel", "400040"), ("vegetationmisc", "c0c000"),
        ("void", "000000"), ("wall", "40c000"),
    ),
    optional=("void",),
)

ADE20K150 = DatasetPalette(
    "ADE20K (150 classes, SceneParsing)",
    "open-mmlab/mmsegmentation, mmseg/datasets/ade.py (ADE20KDataset palette, objectInfo150 order)",
    (
        ("wall", "787878"), ("building", "b47878"), ("sky", "06e6e6"), ("floor", "503232"), ("tree", "04c803"),
        ("ceiling", "787850"), ("road", "8c8c8c"), ("bed", "cc05ff"), ("windowpane", "e6e6e6"), ("grass", "04fa07"),
        ("cabinet", "e005ff"), ("sidewalk", "ebff07"), ("person", "96053d"), ("earth", "787846"), ("door", "08ff33"),
        ("table", "ff0652"), ("mountain", "8fff8c"), ("plant", "ccff04"), ("curtain", "ff3307"), ("chair", "cc4603"),
        ("car", "0066c8"), ("water", "3de6fa"), ("painting", "ff0633"), ("sofa", "0b66ff"), ("shelf", "ff0747"),
        ("house", "ff09e0"), ("sea", "0907e6"), ("mirror", "dcdcdc"), ("rug", "ff095c"), ("field", "7009ff"),
        ("armchair", "08ffd6"), ("seat", "07ffe0"), ("fence", "ffb806"), ("desk", "0aff47"), ("rock", "ff290a"),
        ("wardrobe", "07ffff"), ("lamp", "e0ff08"), ("bathtub", "6608ff"), ("railing", "ff3d06"), ("cushion", "ffc207"),
        ("base", "ff7a08"), ("box", "00ff14"), ("column", "ff0829"), ("signboard", "ff0599"),
        ("chest of drawers", "0633ff"), ("counter", "eb0cff"), ("sand", "a09614"), ("sink", "00a3ff"),
        ("skyscraper", "8c8c8c"), ("fireplace", "fa0a0f"), ("refrigerator", "14ff00"), ("grandstand", "1fff00"),
        ("path", "ff1f00"), ("stairs", "ffe000"), ("runway", "99ff00"), ("case", "0000ff"), ("pool table", "ff4700"),
        ("pillow", "00ebff"), ("screen door", "00adff"), ("stairway", "1f00ff"), ("river", "0bc8c8"),
        ("bridge", "ff5200"), ("bookcase", "00fff5"), ("blind", "003dff"), ("coffee table", "00ff70"),
        ("toilet", "00ff85"), ("flower", "ff0000"), ("book", "ffa300"), ("hill", "ff6600"), ("bench", "c2ff00"),
        ("countertop", "008fff"), ("stove", "33ff00"), ("palm", "0052ff"), ("kitchen island", "00ff29"),
        ("computer", "00ffad"), ("swivel chair", "0a00ff"), ("boat", "adff00"), ("bar", "00ff99"),
        ("arcade machine", "ff5c00"), ("hovel", "ff00ff"), ("bus", "ff00f5"), ("towel", "ff0066"), ("light", "ffad00"),
        ("truck", "ff0014"), ("tower", "ffb8b8"), ("chandelier", "001fff"), ("awning", "00ff3d"),
        ("streetlight", "0047ff"), ("booth", "ff00cc"), ("television receiver", "00ffc2"), ("airplane", "00ff52"),
        ("dirt track", "000aff"), ("apparel", "0070ff"), ("pole", "3300ff"), ("land", "00c2ff"), ("bannister", "007aff"),
        ("escalator", "00ffa3"), ("ottoman", "ff9900"), ("bottle", "00ff0a"), ("buffet", "ff7000"), ("poster", "8fff00"),
        ("stage", "5200ff"), ("van", "a3ff00"), ("ship", "ffeb00"), ("fountain", "08b8aa"), ("conveyer belt", "8500ff"),
        ("canopy", "00ff5c"), ("washer", "b800ff"), ("plaything", "ff001f"), ("swimming pool", "00b8ff"),
        ("stool", "00d6ff"), ("barrel", "ff0070"), ("basket", "5cff00"), ("waterfall", "00e0ff"), ("tent", "70e0ff"),
        ("bag", "46b8a0"), ("minibike", "a300ff"), ("cradle", "9900ff"), ("oven", "47ff00"), ("ball", "ff00a3"),
        ("food", "ffcc00"), ("step", "ff008f"), ("tank", "00ffeb"), ("trade name", "85ff00"), ("microwave", "ff00eb"),
        ("pot", "f500ff"), ("animal", "ff007a"), ("bicycle", "fff500"), ("lake", "0abed4"), ("dishwasher", "d6ff00"),
        ("screen", "00ccff"), ("blanket", "1400ff"), ("sculpture", "ffff00"), ("hood", "0099ff"), ("sconce", "0029ff"),
        ("vase", "00ffcc"), ("traffic light", "2900ff"), ("tray", "29ff00"), ("ashcan", "ad00ff"), ("fan", "00f5ff"),
        ("pier", "4700ff"), ("crt screen", "7a00ff"), ("plate", "00ffb8"), ("monitor", "005cff"),
        ("bulletin board", "b8ff00"), ("shower", "0085ff"), ("radiator", "ffd600"), ("glass", "19c2c2"),
        ("clock", "66ff00"), ("flag", "5c00ff"),
    ),
)
# fmt: on

PALETTES = (VOC21, ADE20K150, CITYSCAPES19, CAMVID11, CAMVID32)


def _matches(text: str, accepted: list[str], name: str, loose: bool) -> bool:
    return label_key(text) in accepted or (loose and _first_word(text) == _first_word(name))


def _positional(labels: Sequence[str], pal: DatasetPalette, keep: list[int]) -> bool:
    names = pal.names()
    return len(labels) == len(keep) and all(
        _matches(t, names[i], pal.entries[i][0], True) for t, i in zip(labels, keep, strict=True)
    )


def _by_name(labels: Sequence[str], pal: DatasetPalette, keep: list[int]) -> dict[str, int] | None:
    names = pal.names()
    texts = {label_key(t): t for t in labels}
    found: dict[str, int] = {}
    for key, text in texts.items():
        # an exact name wins over a first-word match ("traffic light" is not "traffic sign")
        hits = [i for i in keep if _matches(text, names[i], pal.entries[i][0], False)]
        hits = hits or [i for i in keep if _matches(text, names[i], pal.entries[i][0], True)]
        if len(hits) != 1:
            return None
        found[key] = hits[0]
    return found if sorted(found.values()) == keep else None


def dataset_colours(labels: Sequence[str]) -> tuple[DatasetPalette, np.ndarray] | None:
    """The known dataset whose classes ``labels`` are and ``(K, 3)`` RGB in [0, 1] per label, or ``None``.

    Args:
        labels: label texts of one figure, in the order of the class indices drawn.
    """
    n_unique = len({label_key(t) for t in labels})
    for pal in PALETTES:
        full = list(range(len(pal.entries)))
        required = [i for i in full if pal.entries[i][0].split("|")[0] not in pal.optional]
        for keep in [full] + ([required] if required != full else []):
            rgb = pal.rgb()
            if _positional(labels, pal, keep):
                return pal, rgb[keep]
            index = _by_name(labels, pal, keep) if n_unique == len(keep) else None
            if index is not None:
                return pal, rgb[[index[label_key(t)] for t in labels]].reshape(-1, 3)
    return None
