"""Label colours: a label's colour is its own (text, or its dataset's standard palette), not the figure's."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from lseg_nb.viz.colours import (
    COLLISION_DELTA_E,
    LABEL_PALETTE,
    MIN_DELTA_E,
    PALETTE_SIZE,
    WORD_COLOURS,
    hex_colour,
    home_slot,
    label_colours,
    rgb_to_lab,
    word_colour,
)
from lseg_nb.viz.dataset_palettes import ADE20K150, CAMVID11, CAMVID32, CITYSCAPES19, VOC21, dataset_colours

MSRC = [
    "building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain", "aeroplane", "water", "face", "car",
    "bicycle", "flower", "sign", "bird", "book", "chair", "road", "cat", "dog", "body", "boat",
]  # fmt: skip
VOC20 = [n.split("|")[0] for n, _ in VOC21.entries[1:]]


def _hue_deg(rgb) -> float:
    return 360 * colorsys.rgb_to_hsv(*rgb)[0]


def _hexes(colours) -> list[str]:
    return [hex_colour(c) for c in colours]


def _solo(text: str) -> str:
    return hex_colour(label_colours([text])[0])


def test_a_label_keeps_its_colour_across_label_sets_unless_it_collides():
    # the old rule probed in sorted order, so a label moved whenever one sorting before it took its slot
    # ("sky" was the 7th colour of MSRC but another in a figure of sky, lamb and cloud)
    subsets = [
        MSRC,
        MSRC[:5],
        MSRC[5:14],
        MSRC[::2],
        MSRC[1::3] + ["light pole", "zebra"],
        ["sky", "lamb", "cloud"],
    ]
    moved = set()
    for subset in subsets:
        for text, c in zip(subset, _hexes(label_colours(subset)), strict=True):
            if c != _solo(text):
                moved.add((text, "body" in subset))
    # the one collision of MSRC: "car" and "body" hash to the same palette slot and "body" ranks first
    assert moved == {("car", True)}
    assert (
        _hexes(label_colours(["car", "body"]))[1]
        == _solo("body")
        != _hexes(label_colours(["car", "body"]))[0]
    )


def test_collisions_move_only_the_lower_ranked_label_and_colours_stay_distinct():
    words = [f"w{i}" for i in range(400)]
    twin = next(w for w in words[1:] if home_slot(w) == home_slot(words[0]))
    cols = label_colours([words[0], twin])
    homes = {hex_colour(LABEL_PALETTE[home_slot(words[0])])}
    assert hex_colour(cols[0]) != hex_colour(cols[1]) and len(homes & set(map(hex_colour, cols))) == 1
    assert _solo("grass") == "#" + WORD_COLOURS["grass"]
    both = label_colours(["green", "grass"])  # the two table greens are within COLLISION_DELTA_E: one moves
    assert np.linalg.norm(rgb_to_lab(both[0]) - rgb_to_lab(both[1])) >= COLLISION_DELTA_E
    lab = rgb_to_lab(label_colours(words[:120]))
    dist = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(120) * 1e9
    assert dist.min() >= COLLISION_DELTA_E


@pytest.mark.parametrize(
    ("text", "hue", "within"),
    [("green", 120, 30), ("blue", 220, 20), ("sky", 195, 15), ("grass", 105, 20), ("red", 0, 10),
     ("blue car", 220, 20), ("yellow", 50, 10), ("water", 210, 15), ("dark green grass", 105, 20)],
)  # fmt: skip
def test_colour_words_and_stuff_names_get_their_colour(text, hue, within):
    # the old hash drew "green" purple and "blue" lime; hue in degrees (0 red, 120 green, 240 blue), circular
    for labels in ([text], [text, "cow", "person", "zebra"]):
        h = _hue_deg(label_colours(labels)[0])
        assert min(abs(h - hue), 360 - abs(h - hue)) <= within


def test_word_table_lookup_order():
    assert word_colour("Trees") is not None and hex_colour(word_colour("Trees")) == "#" + WORD_COLOURS["tree"]
    assert hex_colour(word_colour("blue sky")) == "#" + WORD_COLOURS["sky"]  # the head noun first
    assert hex_colour(word_colour("red car")) == "#" + WORD_COLOURS["red"]
    assert word_colour("cow") is None and word_colour("") is None
    lab = rgb_to_lab(
        np.array([[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for h in WORD_COLOURS.values()])
    )
    assert lab[:, 0].min() >= 20  # no table colour is near the black of void (L = 0)


def test_known_datasets_get_their_standard_palette():
    assert _hexes(label_colours(VOC20))[:3] == ["#800000", "#008000", "#808000"]  # aeroplane, bicycle, bird
    assert _hexes(label_colours(["background", *VOC20]))[0] == "#000000"
    shuffled = VOC20[::-1]  # by name, in any order
    assert _hexes(label_colours(shuffled)) == _hexes(label_colours(VOC20))[::-1]
    city = [n.split("|")[0] for n, _ in CITYSCAPES19.entries]
    assert dict(zip(city, _hexes(label_colours(city))))["sky"] == "#4682b4"
    camvid = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
              "Bicyclist"]  # fmt: skip
    assert _hexes(label_colours(camvid))[4] == "#3c28de" and len(CAMVID11.entries) == 11
    assert len(CAMVID32.entries) == 32 and dataset_colours([n for n, _ in CAMVID32.entries])[0] is CAMVID32
    assert len(ADE20K150.entries) == 150
    assert dataset_colours(VOC20[:5]) is None  # a subset is not the dataset: coloured by text
    assert dataset_colours(MSRC) is None


def test_our_ade20k_manifest_names_get_the_ade20k_palette():
    import yaml

    from lseg_nb.data.manifests import manifest_path

    path = manifest_path("msrc_v2").parent / "benchmarks" / "ade20k150.yaml"
    names = yaml.safe_load(path.read_text())["classes"]
    found = dataset_colours(names)
    assert found is not None and found[0] is ADE20K150
    assert _hexes(found[1])[:3] == ["#787878", "#b47878", "#06e6e6"]  # wall, building, sky
    assert hex_colour(found[1][58]) != hex_colour(found[1][130])  # the two "screen" classes stay apart
    assert MIN_DELTA_E > COLLISION_DELTA_E


def test_labels_sharing_a_colour_word_get_shades_of_it():
    # the demo's synthetic_textures classes: four patterns per colour; each pattern a distinct shade of its colour
    labels = [
        f"{c} {p}" for c in ("red", "green", "blue", "yellow") for p in ("stripes", "dots", "checks", "plain")
    ]
    cols = label_colours(labels)
    assert len(set(_hexes(cols))) == 16
    for text, c in zip(labels, cols, strict=True):
        hue = {"red": 0, "green": 120, "blue": 220, "yellow": 50}[text.split()[0]]
        h = _hue_deg(c)
        assert min(abs(h - hue), 360 - abs(h - hue)) <= 20, text


def test_distractor_words_leave_the_class_colours_of_the_run_unchanged():
    """Notebook 13 drew "red stripes" maroon beside its distractors while 10 drew it pink from the classes alone."""
    classes = [
        f"{c} {p}" for c in ("red", "green", "blue", "yellow") for p in ("stripes", "dots", "checks", "plain")
    ]
    extras = "red green blue yellow stripes dots checks plain grass sky zebra".split() + ["brick wall"]
    alone = label_colours(classes)
    joint = label_colours(classes + extras, first=len(classes))
    np.testing.assert_array_equal(joint[: len(classes)], alone)
    before = label_colours(classes + extras)[: len(classes)]  # how 13 coloured them
    assert not np.array_equal(before, alone)
    lab = rgb_to_lab(joint)
    gaps = np.linalg.norm(lab[:, None] - lab[None], axis=-1)[np.triu_indices(len(joint), 1)]
    assert gaps.min() > 1.0, "every label of the figure keeps a colour of its own"
    np.testing.assert_array_equal(  # a dataset palette stays that palette with words added
        label_colours(["sky", "road", "car"] + extras, first=3)[:3], label_colours(["sky", "road", "car"])
    )


def test_first_with_more_texts_than_the_palette_falls_back_to_distinct_positional_colours():
    texts = [f"class {i}" for i in range(PALETTE_SIZE)] + ["zebra", "brick wall"]
    joint = label_colours(texts, first=PALETTE_SIZE)
    np.testing.assert_array_equal(joint, label_colours(texts))
    assert len({tuple(c) for c in joint.round(6)}) == len(texts)
