"""Segmentation figures: colours land on the right pixels and are fixed per label text; figures have the expected
panels and keys (void included, absent labels omitted or marked)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from lseg_nb.apps.predict import predict_figure
from lseg_nb.viz.colours import (
    LABEL_PALETTE,
    MIN_DELTA_E,
    PALETTE_SIZE,
    VOID_LABEL,
    hex_colour,
    home_slot,
    label_colours,
    label_palette,
    rgb_to_lab,
)
from lseg_nb.viz.explorer import plot_label_query, share_text
from lseg_nb.viz.segmentation import (
    colorize,
    overlay,
    palette,
    plot_examples,
    plot_loss_curve,
    plot_per_class_iou,
)


def test_colorize_and_overlay_respect_ignore_index():
    colours = palette(3)
    mask = np.array([[0, 1], [2, 255]])
    rgb = colorize(mask, colours)
    assert (rgb[0, 1] == colours[1]).all() and (rgb[1, 1] == 0).all()
    image = np.full((2, 2, 3), 100, np.uint8)
    out = overlay(image, mask, colours, alpha=1.0)
    assert (out[1, 1] == 100).all()  # void keeps the image
    assert (out[1, 0] == colours[2]).all()


def test_palette_colours_are_distinct():
    for n in (5, 30):
        assert len({tuple(c) for c in palette(n)}) == n


def test_figures_have_expected_panels(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    pred = np.zeros((8, 8), int)
    fig = plot_examples([(img, pred, pred), (img, pred, pred)], ["a", "b"], unseen=[1])
    assert len(fig.axes) == 6
    fig.savefig(tmp_path / "x.png")
    bars = plot_per_class_iou([0.5, None], ["a", "b"], unseen=[1])
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()] == ["a", "b *"]
    curve = plot_loss_curve([{"step": 1, "loss": 2.0, "lr": 0.1}, {"step": 2, "loss": 1.0, "lr": 0.05}])
    assert list(curve.axes[0].lines[0].get_ydata()) == [2.0, 1.0]


# --- colours fixed per label text ------------------------------------------------------------------------------


def _legend_colours(fig) -> dict[str, tuple | None]:
    """Key text -> swatch RGB (None for text-only entries), in key order."""
    legend = fig.legends[0] if fig.legends else fig.axes[-1].get_legend()
    return {
        t.get_text(): tuple(np.round(h.get_facecolor()[:3], 4)) if hasattr(h, "get_facecolor") else None
        for t, h in zip(legend.get_texts(), legend.legend_handles)
    }


def test_a_label_has_the_same_colour_whatever_else_is_in_the_figure():
    a = label_colours(["sky", "cow", "grass"])
    b = label_colours(["grass", "sheep", "sky", "water", "cow"])
    np.testing.assert_array_equal(a[0], b[2])  # sky
    np.testing.assert_array_equal(a[1], b[4])  # cow
    np.testing.assert_array_equal(a[2], b[0])  # grass
    np.testing.assert_array_equal(label_colours(["cow", "sky"]), label_colours(["sky", "cow"])[::-1])
    np.testing.assert_array_equal(label_colours([" sky "]), label_colours(["sky"]))
    assert label_palette(["sky"]).dtype == np.uint8


def test_label_colours_are_stable_across_processes():
    # Python's own hash() is salted per process; the colour must not be
    code = "from lseg_nb.viz.colours import label_colours, hex_colour; print(hex_colour(label_colours(['cow'])[0]))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert seen == {hex_colour(label_colours(["cow"])[0])}
    # pinned: a change recolours every saved figure ("sky" from the colour-word table, "cow" from its hash)
    assert (
        hex_colour(label_colours(["sky"])[0]) == "#87ceeb"
        and hex_colour(label_colours(["cow"])[0]) == "#e9d390"
    )
    assert home_slot("cow") == int.from_bytes(hashlib.sha256(b"cow").digest()[:8], "big") % PALETTE_SIZE


def test_palette_colours_are_told_apart_and_none_is_near_black_or_white():
    assert LABEL_PALETTE.shape == (PALETTE_SIZE, 3) and PALETTE_SIZE >= 100
    lab = rgb_to_lab(LABEL_PALETTE)
    dist = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(PALETTE_SIZE) * 1e9
    assert dist.min() >= MIN_DELTA_E  # so any two labels of one figure can be told apart
    assert 30 <= lab[:, 0].min() and lab[:, 0].max() <= 92  # void is black; white would vanish on paper
    np.testing.assert_allclose(rgb_to_lab(np.array([1.0, 1.0, 1.0])), [100, 0, 0], atol=0.05)


def test_colliding_labels_get_distinct_colours():
    words = [f"w{i}" for i in range(400)]
    slot = home_slot(words[0])
    twin = next(w for w in words[1:] if home_slot(w) == slot)  # same home colour
    cols = label_colours([words[0], twin])
    assert not np.allclose(cols[0], cols[1])
    np.testing.assert_array_equal(cols[0], LABEL_PALETTE[slot])  # the first by rank (SHA-256) keeps its home
    assert len({tuple(c) for c in label_colours(words[:300]).round(6)}) == 300  # beyond the palette: distinct
    np.testing.assert_array_equal(label_colours(["a", "b", "a"])[0], label_colours(["a", "b", "a"])[2])


def test_example_figures_colour_classes_by_name_and_key_void():
    img = np.zeros((6, 6, 3), np.uint8)
    target = np.zeros((6, 6), int)
    target[0] = 255
    pred = np.ones((6, 6), int)
    fig = plot_examples([(img, pred, target)], ["road", "sky"])
    keys = _legend_colours(fig)
    assert set(keys) == {"road", "sky", VOID_LABEL}  # label maps: void is black, not untinted
    assert keys["sky"] == tuple(np.round(label_palette(["sky"])[0] / 255, 4))  # drawn as uint8
    other = plot_examples([(img, np.zeros((6, 6), int), np.zeros((6, 6), int))], ["sky", "tree"])
    assert _legend_colours(other) == {"sky": keys["sky"]}  # same colour in another figure; no void, no key
    drawn = fig.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(drawn, colorize(pred, label_palette(["road", "sky"])))  # the key's colours


def test_nearest_text_figure_uses_label_colours_and_keys_void():
    from lseg_nb.viz.diagnostics import plot_nearest_text_row

    gt = np.zeros((8, 8), int)
    gt[0] = 255
    fig = plot_nearest_text_row(
        np.zeros((8, 8, 3)),
        np.ones((8, 8), int),
        gt,
        np.full((8, 8), 2),
        ["cow", "sky", "lamb"],
        ["cow", "sky"],
    )
    keys = _legend_colours(fig)
    cols = label_colours(["cow", "sky", "lamb"])
    assert keys["sky"] == tuple(np.round(cols[1], 4)) and keys["lamb (text)"] == tuple(np.round(cols[2], 4))
    assert VOID_LABEL in keys


def test_label_query_figure_keys_shares_and_can_omit_absent_labels():
    img = np.zeros((4, 5, 3), np.uint8)
    mask = np.zeros((4, 5), int)
    mask[0, 0] = 2
    keys = list(_legend_colours(plot_label_query(img, mask, ["a", "b", "c"])))
    assert keys == ["a (95%)", "b (0%)", "c (5%)"]
    keys = list(_legend_colours(plot_label_query(img, mask, ["a", "b", "c"], omit_absent=True)))
    assert keys == ["a (95%)", "c (5%)", "not found: b"]
    assert share_text(0.001) == "<1%" and share_text(0.0) == "0%"


def test_predict_figure_has_image_overlay_and_label_map(tiny_model):
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    labels = ["sky", "grass", "cow", "tree", "water", "road"]
    fig, shares = predict_figure(tiny_model, image, labels, title="x.png")
    assert [a.get_title() for a in fig.axes] == [
        "x.png",
        "segmentation with your labels",
        "label map (key colours)",
    ]
    assert sum(shares.values()) == pytest.approx(1.0)
    keys = _legend_colours(fig)
    found = [f"{k} ({share_text(v)})" for k, v in shares.items() if v > 0]
    absent = [k for k, v in shares.items() if v == 0]
    unwrapped = [k.replace("\n", " ") for k in keys]  # the "not found" line is wrapped to 40 characters
    assert unwrapped == found + ([f"not found: {', '.join(absent)}"] if absent else [])
    # every swatch is a colour the label map draws (the old key matched no pixel of the blended overlay)
    drawn = {tuple(np.round(c / 255, 4)) for c in fig.axes[2].get_images()[0].get_array().reshape(-1, 3)}
    assert {c for c in keys.values() if c is not None} == drawn


def test_loss_curve_labels_every_line_and_axis():
    records = [
        {"step": 1, "loss": 2.0, "lr": 0.1},
        {"step": 2, "eval": {"miou": 0.1}},  # evaluation records are not loss points
        {"step": 2, "loss": 1.0, "lr": 0.05},
    ]
    fig = plot_loss_curve(records, "runs/demo")
    loss_ax, lr_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [2.0, 1.0] and list(lr_ax.lines[0].get_ydata()) == [
        0.1,
        0.05,
    ]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == [
        "training loss",
        "learning rate (right axis)",
    ]
    assert loss_ax.get_xlabel() == "optimiser step"
    assert loss_ax.get_ylabel().startswith("training loss") and lr_ax.get_ylabel() == "learning rate"
    assert loss_ax.get_title() == "training loss and learning rate: runs/demo"
    empty = plot_loss_curve([])
    assert "no training steps logged" in empty.axes[0].texts[0].get_text()


def test_per_class_iou_key_lists_only_the_groups_drawn():
    """02's unseen-only chart had a "seen" swatch with no seen bar."""
    only_unseen = plot_per_class_iou([0.1, 0.0], ["a", "b"], unseen=[0, 1])
    assert [t.get_text() for t in only_unseen.axes[0].get_legend().get_texts()] == ["unseen (*)"]
    both = plot_per_class_iou([0.1, 0.0], ["a", "b"], unseen=[1])
    assert [t.get_text() for t in both.axes[0].get_legend().get_texts()] == ["seen", "unseen (*)"]
