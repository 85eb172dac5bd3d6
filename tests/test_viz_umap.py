"""The joint UMAP figure: a key naming every class, unseen marked, text labels that never overprint, ranks.

The figures are built from hand-made :class:`UmapResult` objects (no UMAP fit): the worst case for the labels is
the raw-embedding modality gap, every text on one point, which is what the old figure overprinted into a blob.
"""

from __future__ import annotations

import io
import itertools
import sys
from dataclasses import replace

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from lseg_nb.diagnostics import UmapResult
from lseg_nb.diagnostics.umap_projection import centroid_text_ranks
from lseg_nb.viz import label_colours, plot_umap
from lseg_nb.viz.umap import repel_labels

MSRC = ["building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain", "aeroplane", "water", "face"]
MSRC += ["car", "bicycle", "flower", "sign", "bird", "book", "chair", "road", "cat", "dog", "body", "boat"]
UNSEEN = [3, 9, 14, 20]


def _result(k: int, texts_on_one_point: bool, per_class: int = 6) -> UmapResult:
    names = MSRC[:k]
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(k), per_class), np.arange(k)])
    is_text = np.arange(len(labels)) >= k * per_class
    centres = rng.uniform(-10, 10, size=(k, 2))
    coords = centres[labels] + rng.normal(scale=0.3, size=(len(labels), 2))
    if texts_on_one_point:
        coords[is_text] = [12.0, 12.0]
    unseen = [u for u in UNSEEN if u < k]
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(k, 8, generator=g), dim=-1)
    pix_lab = torch.from_numpy(labels[~is_text])
    pix = text[pix_lab] + 0.3 * torch.randn(len(pix_lab), 8, generator=g)
    ranks = centroid_text_ranks(pix, pix_lab, text, names, unseen)
    return UmapResult(
        coords.astype(np.float32), labels, is_text, np.isin(labels, unseen), names, 1000, k * per_class,
        centred=not texts_on_one_point, ranks=ranks,
    )  # fmt: skip


def _render(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # draws every artist, and fixes the final layout the label boxes live in
    assert buf.getvalue()[:4] == b"\x89PNG"


@pytest.fixture(autouse=True)
def _no_new_pyplot_figures():
    def nums() -> list[int]:
        return matplotlib.pyplot.get_fignums() if "matplotlib.pyplot" in sys.modules else []

    before = nums()
    yield
    assert nums() == before


def _label_boxes(fig: Figure) -> list:
    # the visible box of each label (text and frame), without its leader line to the star
    return [t.get_bbox_patch().get_window_extent() for t in fig.axes[0].texts]


@pytest.mark.parametrize("k", [4, 23])
def test_text_labels_never_overlap_even_when_every_text_is_on_one_point(k):
    fig = plot_umap(_result(k, texts_on_one_point=True))
    _render(fig)
    names = [n + ("*" if i in UNSEEN else "") for i, n in enumerate(MSRC[:k])]
    assert [t.get_text() for t in fig.axes[0].texts] == names
    boxes = _label_boxes(fig)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    axes_box = fig.axes[0].get_window_extent()
    assert all(
        axes_box.x0 <= b.x0 and b.x1 <= axes_box.x1 and axes_box.y0 <= b.y0 and b.y1 <= axes_box.y1
        for b in boxes
    )


def test_key_names_every_class_with_its_colour_and_marks_unseen():
    res = _result(23, texts_on_one_point=False)
    fig = plot_umap(res)
    _render(fig)
    assert len(fig.legends) == 1
    key = fig.legends[0]
    want = [n + (" (unseen)" if i in UNSEEN else "") for i, n in enumerate(MSRC)]
    assert [t.get_text() for t in key.get_texts()] == want
    handles = key.legend_handles
    assert [h.get_marker() for h in handles] == ["^" if i in UNSEEN else "o" for i in range(23)]
    assert np.allclose([matplotlib.colors.to_rgb(h.get_color()) for h in handles], label_colours(MSRC))


def test_centroids_joined_to_their_texts():
    res = _result(4, texts_on_one_point=False)
    fig = plot_umap(res)
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xydata()) == 2]
    assert len(lines) == 4
    for k, ln in enumerate(lines):
        assert np.allclose(ln.get_xydata(), [res.pixel_centroids()[k], res.text_coords[k]])
        assert ln.get_linestyle() == ("--" if k == 3 else "-")  # cow (index 3) is unseen


def test_rank_panel_shows_every_class_seen_first():
    res = _result(23, texts_on_one_point=False)
    fig = plot_umap(res)
    ax = fig.axes[1]
    order = [i for i in range(23) if i not in UNSEEN] + UNSEEN
    ticks = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)
    assert [t for _, t in ticks] == [MSRC[i] + ("*" if i in UNSEEN else "") for i in order]
    widths = sorted(((p.get_y(), p.get_width()) for p in ax.patches), reverse=True)
    assert [w for _, w in widths] == [res.ranks[i].rank for i in order]
    (s1, sn), (u1, un) = res.rank1_counts(False), res.rank1_counts(True)
    assert f"seen {s1}/{sn}, unseen {u1}/{un}" in ax.get_title() and (sn, un) == (19, 4)


def test_rank_panel_names_classes_without_pixels():
    full = _result(4, texts_on_one_point=False)
    keep = (full.labels != 2) | full.is_text  # tree (index 2) loses its pixels
    nan = float("nan")
    ranks = [
        replace(r, n_pixels=0, rank=nan, nearest=None, rank_centred=nan) if r.index == 2 else r
        for r in full.ranks
    ]
    res = replace(full, coords=full.coords[keep], labels=full.labels[keep], is_text=full.is_text[keep],
                  is_unseen=full.is_unseen[keep], n_sampled_pixels=int((~full.is_text[keep]).sum()), ranks=ranks)  # fmt: skip
    fig = plot_umap(res)
    _render(fig)
    assert [t.get_text() for t in fig.axes[1].texts] == ["no pixels in the sample"]
    assert sum(len(ln.get_xydata()) == 2 for ln in fig.axes[0].get_lines()) == 3  # no centroid line for tree


def test_title_names_the_space():
    assert "centred" in plot_umap(_result(4, False)).axes[0].get_title()
    assert "modality gap" in plot_umap(_result(4, True)).axes[0].get_title()


def test_repel_labels_boxes_are_disjoint_inside_and_off_the_anchors():
    anchors = np.full((23, 2), 0.5)
    anchors[5] = [0.02, 0.98]  # one in a corner: its box must still stay inside
    sizes = np.tile([0.12, 0.04], (23, 1))
    pos = repel_labels(anchors, sizes, pad=0.0)
    half = sizes / 2
    assert (pos - half >= -1e-12).all() and (pos + half <= 1 + 1e-12).all()
    apart = (np.abs(pos[:, None] - pos[None]) >= half[:, None] + half[None] - 1e-12).any(-1)
    assert apart[~np.eye(23, dtype=bool)].all()
    covers = (np.abs(pos[:, None] - anchors[None]) < half[:, None]).all(-1)
    assert not covers.any()
    assert np.linalg.norm(pos - anchors, axis=1).max() < 0.5  # near their anchors, not scattered anywhere
