"""Segmentation figures: colours land on the right pixels; figures have the expected panels."""

from __future__ import annotations

import numpy as np

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
