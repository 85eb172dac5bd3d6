"""Label explorer: the query logic (no browser) and the widget wiring."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lseg_nb.apps.widgets import LabelExplorer, LabelExplorerWidget, label_explorer
from lseg_nb.engine.inference import predict_logits
from lseg_nb.viz.explorer import plot_label_query


@pytest.fixture
def data(images, labels):
    return list(zip(images, labels))


def test_query_matches_a_full_forward_pass(tiny_model, data, images):
    explorer = LabelExplorer(tiny_model, data)
    q = explorer.query(1, " red, stripes ,grass")
    assert q.index == 1 and q.labels == ["red", "stripes", "grass"]
    ref = predict_logits(tiny_model, images[1:2], tiny_model.encode_text(q.labels))[0].argmax(0)
    np.testing.assert_array_equal(q.mask, ref.numpy())
    np.testing.assert_allclose(q.shares, np.bincount(q.mask.ravel(), minlength=3) / q.mask.size)
    assert q.shares.sum() == pytest.approx(1.0)


def test_image_embeddings_are_cached_per_image(tiny_model, data):
    explorer = LabelExplorer(tiny_model, data)
    explorer.query(0, "a, b")
    cached = explorer.predictor._emb
    explorer.query(0, "c, d, e")
    assert explorer.predictor._emb is cached
    explorer.query(1, "c, d, e")
    assert explorer.predictor._emb is not cached


def test_plain_tensor_images_and_errors(tiny_model, images):
    explorer = LabelExplorer(tiny_model, list(images))
    assert len(explorer) == 2 and explorer.display_image(0).shape == (64, 64, 3)
    with pytest.raises(IndexError, match="out of range 0..1"):
        explorer.query(2, "a")
    with pytest.raises(ValueError, match="blank"):
        explorer.query(0, " , ")
    with pytest.raises(ValueError, match="given twice"):
        explorer.query(0, "a, b, a")
    with pytest.raises(ValueError, match="at least one image"):
        LabelExplorer(tiny_model, [])


def test_figure_legend_lists_labels_with_shares(tiny_model, data):
    fig = LabelExplorer(tiny_model, data).figure(0, "sky, cow")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(" (")[0] for t in texts] == ["sky", "cow"] and all(t.endswith("%)") for t in texts)
    with pytest.raises(ValueError, match="does not match image"):
        plot_label_query(np.zeros((4, 4, 3), np.uint8), np.zeros((3, 4), int), ["a"])


def test_widget_updates_on_index_and_labels(tiny_model, data):
    w = label_explorer(tiny_model, data, "a, b", index=1)
    assert isinstance(w, LabelExplorerWidget) and w.index.max == 1
    assert w.last_query.index == 1 and w.last_query.labels == ["a", "b"] and w.error is None
    [shown] = w.output.outputs
    assert base64.b64decode(shown["data"]["image/png"]).startswith(b"\x89PNG")
    w.labels.value = "x, y, z"
    assert w.last_query.labels == ["x", "y", "z"]
    w.index.value = 0
    assert w.last_query.index == 0 and w.last_query.labels == ["x", "y", "z"]
    before = w.last_query
    w.labels.value = " , "
    assert "blank" in w.error and w.last_query is before
    assert [o["output_type"] for o in w.output.outputs] == ["stream"] and "blank" in w.output.outputs[0][
        "text"
    ]
    w.labels.value = "sky"
    assert w.error is None and (w.last_query.mask == 0).all()
    assert w.output.outputs[0]["output_type"] == "display_data"


def test_single_label_gives_a_constant_mask(tiny_model):
    explorer = LabelExplorer(tiny_model, [torch.zeros(3, 32, 32)])
    assert (explorer.query(0, "anything").mask == 0).all()
