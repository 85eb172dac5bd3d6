"""Diagnostic plots return Figures with the expected axes, render under Agg and never touch pyplot."""

from __future__ import annotations

import io
import sys

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from lseg_nb.diagnostics import neighbour_analysis, temperature_scaling
from lseg_nb.diagnostics.calibration import CalibrationAccumulator
from lseg_nb.viz import (
    class_palette,
    plot_confidence_map,
    plot_confusion_vs_similarity,
    plot_nearest_text_row,
    plot_neighbour_report,
    plot_reliability,
)

NAMES = ["sky", "grass", "cow", "sheep"]


def _render(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # draws every artist: catches errors that only show at render time
    assert buf.getvalue()[:4] == b"\x89PNG"


def _pyplot_figures() -> list[int]:
    return matplotlib.pyplot.get_fignums() if "matplotlib.pyplot" in sys.modules else []


@pytest.fixture(autouse=True)
def _no_new_pyplot_figures():
    before = _pyplot_figures()
    yield
    assert _pyplot_figures() == before


@pytest.fixture
def report():
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    lab = torch.arange(4).repeat_interleave(10)
    centres = text[lab].clone()
    centres[30:35] = text[1]  # half the sheep sit on grass
    pix = F.normalize(centres + 0.05 * torch.randn(40, 8, generator=g), dim=-1)
    return neighbour_analysis(pix, lab, text, NAMES, [0, 1], [2, 3])


def test_neighbour_plots(report):
    fig = plot_neighbour_report(report)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == NAMES
    rank_key = fig.axes[1].get_legend()
    assert [t.get_text() for t in rank_key.get_texts()] == ["mean rank (bar)", "median rank"]
    # the mean-rank swatch is neutral: orange already means "unseen" in the left key
    assert matplotlib.colors.to_hex(rank_key.legend_handles[0].get_facecolor()) == "#999999"
    _render(fig)
    fig = plot_confusion_vs_similarity(report)
    assert len(fig.axes) == 1 and "Spearman" in fig.axes[0].get_title()
    _render(fig)


def test_reliability_layouts():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2000, 4, generator=g)
    target = torch.multinomial(torch.softmax(logits / 2, 1), 1, generator=g)[:, 0]
    ts = temperature_scaling(logits, target, class_groups={"seen": [0, 1], "unseen": [2, 3]})
    fig = plot_reliability(ts.before)
    assert len(fig.axes) == 3
    _render(fig)
    fig = plot_reliability(ts, equal_mass=True)
    assert len(fig.axes) == 6 and "after T=" in fig.axes[3].get_title()
    _render(fig)
    assert len(plot_reliability(ts.before["unseen"]).axes) == 1
    assert len(plot_reliability(ts.before, ts.after, groups=["seen", "unseen"]).axes) == 4
    with pytest.raises(KeyError, match="novel"):
        plot_reliability(ts.before, groups=["novel"])
    empty = CalibrationAccumulator(class_groups={"unseen": [3]})
    empty.update(torch.full((4, 4), 0.25), torch.zeros(4, dtype=torch.long))
    _render(plot_reliability(empty.reports()))  # an empty group must still draw


def test_confidence_map_layout():
    conf = torch.rand(2, 16, 16)
    fig = plot_confidence_map(conf)
    assert len(fig.axes) == 2 + 1  # maps + colour bar
    _render(fig)
    fig = plot_confidence_map(conf, images=torch.randn(2, 3, 16, 16))
    assert len(fig.axes) == 2 * 2 + 1
    _render(fig)
    assert len(plot_confidence_map(conf[0], images=torch.rand(3, 16, 16)).axes) == 3
    with pytest.raises(ValueError, match="3 images for 2"):
        plot_confidence_map(conf, images=torch.rand(3, 3, 16, 16))


def test_nearest_text_row_legend_includes_distractors():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (16, 16), generator=g)
    gt = pred.clone()
    gt[:2] = 255
    vocab = [*NAMES, "cloud", "lamb"]
    near = torch.full((16, 16), 5)
    near[:8] = 0
    fig = plot_nearest_text_row(torch.randn(3, 16, 16), pred, gt, near, vocab, NAMES)
    assert len(fig.axes) == 4
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert set(NAMES) <= set(legend) and "lamb (text)" in legend and "cloud (text)" not in legend
    _render(fig)


def test_class_palette_distinct():
    for n in (3, 15, 40):
        pal = class_palette(n)
        assert pal.shape == (n, 3) and len({tuple(c) for c in pal.round(4)}) == n
