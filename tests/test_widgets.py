"""Label explorer: the query logic (no browser) and the widget wiring (state and the HTML/PNG it shows).

The real browser (JupyterLab + Chromium, clicks through ipyevents) is exercised by tests/test_browser.py.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lseg_nb.apps.widgets import LabelExplorer, LabelExplorerWidget, decode_image, label_explorer
from lseg_nb.engine.inference import embed_padded, predict_logits
from lseg_nb.engine.predictor import to_input
from lseg_nb.viz.colours import hex_colour, label_colours


@pytest.fixture
def data(images, labels):
    return list(zip(images, labels))


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_query_matches_a_full_forward_pass(tiny_model, data, images):
    explorer = LabelExplorer(tiny_model, data)
    q = explorer.query(1, " red, stripes ,grass")
    assert q.index == 1 and q.labels == ["red", "stripes", "grass"]
    ref = predict_logits(tiny_model, images[1:2], tiny_model.encode_text(q.labels))[0]
    np.testing.assert_allclose(q.logits, ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(q.mask, ref.argmax(0).numpy())
    np.testing.assert_allclose(q.shares, np.bincount(q.mask.ravel(), minlength=3) / q.mask.size)
    assert q.shares.sum() == pytest.approx(1.0)


def test_similarity_is_the_cosine_of_text_and_pixel_embeddings(tiny_model, data, images):
    q = LabelExplorer(tiny_model, data).query(0, "red, sky")
    with torch.no_grad():
        emb, size = embed_padded(tiny_model.eval(), images[:1])
        text = tiny_model.encode_text(["red", "sky"])
        cos = torch.einsum("bdhw,kd->bkhw", F.normalize(emb, dim=1), F.normalize(text, dim=1))
        ref = F.interpolate(cos, size=size, mode="bilinear", align_corners=True)[0, :, :64, :64]
    np.testing.assert_allclose(q.similarity, ref.numpy(), atol=1e-5)
    assert np.abs(q.similarity).max() <= 1 + 1e-6
    # this head has no regularisation block: logits are exactly the scaled cosine
    np.testing.assert_allclose(q.similarity * float(tiny_model.head.scale), q.logits, atol=1e-4)


def test_pixel_probabilities_follow_the_temperature(tiny_model, data):
    q = LabelExplorer(tiny_model, data).query(0, "a, b, c, d, e, f, g")
    logits = torch.from_numpy(q.logits[:, 5, 7])
    for t in (0.2, 1.0, 7.0):
        np.testing.assert_allclose(q.probabilities(5, 7, t), torch.softmax(logits / t, 0).numpy(), rtol=1e-5)
    top = q.top_labels(5, 7, k=5, temperature=1.0)
    assert len(top) == 5 and top[0][0] == q.labels[q.mask[5, 7]]
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    hot = q.top_labels(5, 7, k=5, temperature=1e4)
    assert [lab for lab, _ in hot] == [lab for lab, _ in top]  # the order never depends on T
    assert max(p for _, p in hot) == pytest.approx(1 / 7, abs=1e-3)  # very hot: near uniform
    assert sum(p for _, p in q.top_labels(5, 7, k=10)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="temperature"):
        q.probabilities(0, 0, 0.0)
    with pytest.raises(IndexError, match="outside the 64x64 image"):
        q.top_labels(64, 0)


def test_image_embeddings_are_cached_per_image(tiny_model, data):
    explorer = LabelExplorer(tiny_model, data)
    explorer.query(0, "a, b")
    cached = explorer.predictor._emb
    explorer.query(0, "c, d, e")
    assert explorer.predictor._emb is cached
    explorer.query(1, "c, d, e")
    assert explorer.predictor._emb is not cached


def test_bad_label_text_and_indices_are_explained(tiny_model, images):
    explorer = LabelExplorer(tiny_model, list(images))
    assert len(explorer) == 2 and explorer.display_image(0).shape == (64, 64, 3)
    with pytest.raises(IndexError, match="out of range 0..1"):
        explorer.query(2, "a")
    with pytest.raises(ValueError, match="no labels"):
        explorer.query(0, " , ")
    with pytest.raises(ValueError, match="'red' is given twice"):
        explorer.query(0, "red, sky, red")
    with pytest.raises(ValueError, match="entry 2 of 'red, , sky' is empty"):
        explorer.query(0, "red, , sky")
    with pytest.raises(ValueError, match="at least one image"):
        LabelExplorer(tiny_model, [])
    with pytest.raises(ValueError, match="3 names for 2 images"):
        LabelExplorer(tiny_model, list(images), names=["a", "b", "c"])


def test_uploaded_images_are_normalised_with_the_model_mean_and_std(tiny_model, images):
    explorer = LabelExplorer(tiny_model, list(images), max_side=40)
    rgb = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    i = explorer.add_upload(_png(rgb), "photo.png")
    assert i == 2 and explorer.names[i] == "photo.png" and len(explorer) == 3
    np.testing.assert_allclose(explorer.image_tensor(i), to_input(rgb, tiny_model)[0])
    np.testing.assert_array_equal(explorer.display_image(i), rgb)  # round trip through mean/std
    big = explorer.add_image(np.zeros((100, 50, 3), np.uint8), "big")
    assert explorer.image_tensor(big).shape == (3, 40, 20)  # long side shrunk to max_side
    assert explorer.query(big, "a, b").mask.shape == (40, 20)
    with pytest.raises(ValueError, match="notes.txt is not a readable image"):
        explorer.add_upload(b"not an image", "notes.txt")
    with pytest.raises(ValueError, match="RGB uint8"):
        explorer.add_image(np.zeros((4, 4)), "grey")
    assert decode_image(_png(rgb[..., 0].copy())).shape == (30, 20, 3)  # greyscale files become RGB


def test_static_figure_has_a_key_of_label_shares(tiny_model, data):
    fig = LabelExplorer(tiny_model, data, names=["first", "second"]).figure(0, "sky, cow")
    assert len(fig.axes) == 3 and fig.axes[0].get_title() == "first"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(" (")[0] for t in texts] == ["sky", "cow"] and all(t.endswith("%)") for t in texts)


def _png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_widget_shows_the_typed_labels_and_errors_in_place(tiny_model, data):
    w = label_explorer(tiny_model, data, "a, b", index=1)
    assert isinstance(w, LabelExplorerWidget) and [v for _, v in w.picker.options] == [0, 1]
    assert w.last_query.index == 1 and w.legend_labels == ["a", "b"] and w.error is None
    assert bytes(w.overlay.value).startswith(b"\x89PNG") and bytes(w.heatmaps.value).startswith(b"\x89PNG")
    assert _png_size(bytes(w.overlay.value)) == (384, 384)  # 64 px image enlarged 6x
    w.labels.value = "x, y, z"
    assert w.legend_labels == ["x", "y", "z"] and 'class="lseg-legend-label">y<' in w.legend.value
    for lab, c in zip(["x", "y", "z"], label_colours(["x", "y", "z"])):
        assert hex_colour(c) in w.legend.value, lab
    w.picker.value = 0
    assert w.last_query.index == 0 and w.legend_labels == ["x", "y", "z"]
    with pytest.raises(IndexError, match="image index 2 is out of range 0..1"):
        label_explorer(tiny_model, data, "a", index=2)
    before = w.last_query
    for bad, says in ((" , ", "no labels"), ("x, x", "given twice"), ("x,,y", "is empty")):
        w.labels.value = bad
        assert says in w.error and says in w.message.value and w.last_query is before
        assert w.legend_labels == [] and w.legend.value == "" and w.overlay.layout.display == "none"
    w.labels.value = "<b>sky</b>"
    assert w.error is None and w.message.value == "" and (w.last_query.mask == 0).all()
    assert "&lt;b&gt;sky&lt;/b&gt;" in w.legend.value and w.overlay.layout.display is None


def test_click_shows_the_top_labels_of_that_pixel(tiny_model, data):
    w = label_explorer(tiny_model, data, "a, b, c, d, e, f")
    assert w.pixel is None and w.top == []
    w._on_click({"type": "click", "dataX": 6 * 10 + 3, "dataY": 6 * 20 + 5})  # 6 display px per image px
    assert w.pixel == (20, 10)
    q = w.last_query
    assert w.top == q.top_labels(20, 10, 5, 1.0) and len(w.top) == 5
    assert "pixel (y=20, x=10)" in w.pixel_info.value and w.pixel_info.value.count("lseg-top-row") == 5
    w.temperature.value = 10.0
    assert w.top == q.top_labels(20, 10, 5, 10.0) and f"{w.top[0][1]:.1%}" in w.pixel_info.value
    w.labels.value = "sky, cow"  # the same pixel, queried with the new labels
    assert w.pixel == (20, 10) and [lab for lab, _ in w.top] == sorted(
        ["sky", "cow"], key=lambda s: -dict(w.top)[s]
    )
    assert {lab for lab, _ in w.top} == {"sky", "cow"}
    w.picker.value = 1  # another image: the pixel is forgotten
    assert w.pixel is None and w.top == []
    w._on_click({"type": "click", "dataX": 10_000, "dataY": -5})  # outside: clamped to the border
    assert w.pixel == (0, 63)


def _upload(name: str, content: bytes) -> tuple[dict, ...]:
    """The value FileUpload holds after a browser upload (ipywidgets 8 format)."""
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return (
        {
            "name": name,
            "type": "",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": when,
        },
    )


def test_upload_button_adds_and_selects_the_image(tiny_model, data):
    w = label_explorer(tiny_model, data, "a, b")
    rgb = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    w.upload.value = _upload("cat.png", _png(rgb))
    assert w.picker.value == 2 and w.picker.options[-1] == ("cat.png", 2)
    assert w.last_query.index == 2 and w.last_query.mask.shape == (24, 40) and w.error is None
    w.upload.value = _upload("x.txt", b"nope")
    assert "x.txt is not a readable image" in w.error and w.picker.value == 2


def test_unexpected_errors_are_shown_in_the_widget(tiny_model, data, monkeypatch):
    w = label_explorer(tiny_model, data, "a, b")

    def broken(labels):
        raise RuntimeError("text encoder exploded")

    monkeypatch.setattr(tiny_model, "encode_text", broken)
    w.labels.value = "c, d"
    assert w.error == "RuntimeError: text encoder exploded"
    assert "Traceback" in w.message.value and "text encoder exploded" in w.message.value


def test_single_label_gives_a_constant_mask(tiny_model):
    explorer = LabelExplorer(tiny_model, [torch.zeros(3, 32, 32)])
    assert (explorer.query(0, "anything").mask == 0).all()


def _bomb_png() -> bytes:
    """A PNG header claiming 20000 x 20000 pixels (past Pillow's decompression-bomb limit), almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def test_uploads_use_the_reader_of_predict(tiny_model, data):
    """16-bit greyscale scaled (not clipped to white), EXIF orientation applied, as lseg-nb predict reads files."""
    explorer = LabelExplorer(tiny_model, data)
    grey = np.full((6, 4), 32768, np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    i = explorer.add_upload(buf.getvalue(), "scan16.png")
    assert abs(int(explorer.display_image(i)[0, 0, 0]) - 128) <= 1  # 32768 / 65535 of white, not 255
    stored = np.random.default_rng(2).integers(0, 256, (2, 4, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer turns the stored pixels 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif.tobytes())
    j = explorer.add_upload(buf.getvalue(), "phone.png")
    np.testing.assert_array_equal(explorer.display_image(j), np.rot90(stored, -1))


def test_an_upload_past_the_decompression_limit_is_one_line_in_the_widget(tiny_model, data):
    w = label_explorer(tiny_model, data, "a, b")
    w.upload.value = _upload("huge.png", _bomb_png())
    assert w.error is not None and "huge.png" in w.error and "too large" in w.error
    assert "Traceback" not in w.message.value and "\n" not in w.error
    assert w.picker.value == 0  # nothing was added


def test_the_picker_shows_the_dataset_ids(tiny_model, tmp_path):
    from lseg_nb.data.datasets import SegmentationDataset
    from lseg_nb.data.synthetic import generate_synthetic
    from lseg_nb.data.transforms import eval_transform

    root = generate_synthetic(tmp_path / "synth", seed=0, n_train=1, n_val=1, n_test=3, size=32)
    tf = eval_transform(tiny_model.config.mean, tiny_model.config.std)
    ds = SegmentationDataset(root, "synthetic_textures", "test", transform=tf)
    w = label_explorer(tiny_model, ds, "a, b", index=2)
    assert w.picker.options == (("test_0000", 0), ("test_0001", 1), ("test_0002", 2))
    assert w.picker.label == "test_0002" and w.explorer.draw(w.last_query).axes[0].get_title() == "test_0002"
    # a plain sequence of images has no ids: its position names it
    assert [n for n, _ in label_explorer(tiny_model, [ds[0][0]], "a").picker.options] == ["image 0"]


def test_the_clicked_pixel_gets_a_marker_visible_at_display_size(tiny_model):
    """A 320 px image is shown at 384 px without enlargement: the marker must still be dozens of pixels wide."""
    big = [torch.rand(3, 320, 320, generator=torch.Generator().manual_seed(0))]
    w = label_explorer(tiny_model, big, "a, b, c")
    before = np.array(Image.open(io.BytesIO(bytes(w.overlay.value))).convert("RGB"))
    w.select_pixel(100, 200)
    after = np.array(Image.open(io.BytesIO(bytes(w.overlay.value))).convert("RGB"))
    changed = np.argwhere((before != after).any(-1))
    (y0, x0), (y1, x1) = changed.min(0), changed.max(0)
    assert y0 < 100 < y1 and x0 < 200 < x1  # centred on the pixel
    assert min(y1 - y0, x1 - x0) >= 40  # arms of 20+ px each way: 1/8 of the image, not a 7 px cross
    white = (after == 255).all(-1) & (before != after).any(-1)
    black = (after == 0).all(-1) & (before != after).any(-1)
    assert white.sum() >= 80 and black.sum() >= 80  # a white core outlined in black shows on any colour
    np.testing.assert_array_equal(after[100, 200], before[100, 200])  # the clicked pixel itself stays visible
