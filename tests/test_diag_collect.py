"""Dataset-level collectors: padded pixel embeddings, stratified samples, per-pixel logits, example images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.diagnostics.collect import (
    collect_examples,
    collect_logits,
    collect_pixel_embeddings,
    embed_padded,
    iter_pixel_embeddings,
)

NAMES = ["cat", "grass", "sky"]


@pytest.fixture
def data(images, labels):
    return list(zip(images, labels))


def test_embed_padded_matches_encoding_the_zero_padded_image(tiny_model):
    image = torch.randn(3, 50, 70, generator=torch.Generator().manual_seed(3))
    emb, padded = embed_padded(tiny_model, image)
    assert padded == (64, 96) and emb.shape == (1, 16, 32, 48)
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model.encode_image(F.pad(image[None], (0, 26, 0, 14)))
    torch.testing.assert_close(emb, ref)


def test_iter_pixel_embeddings_marks_padding_ignored(tiny_model):
    label = torch.randint(0, 3, (50, 70), generator=torch.Generator().manual_seed(4))
    data = [(torch.randn(3, 50, 70), label)]
    [(emb, lab)] = list(iter_pixel_embeddings(tiny_model, data))
    assert emb.shape == (1, 16, 32, 48) and lab.shape == (1, 64, 96)
    assert torch.equal(lab[0, :50, :70], label)
    assert (lab[0, 50:] == 255).all() and (lab[0, :, 70:] == 255).all()


def test_collect_pixel_embeddings_is_stratified_and_real(tiny_model, data, labels):
    emb, lab = collect_pixel_embeddings(tiny_model, data, per_class=5, max_total=100, seed=0)
    assert emb.shape == (15, 16) and sorted(lab.tolist()) == [0] * 5 + [1] * 5 + [2] * 5
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(15))
    # every sampled row is the embedding of some pixel of that class on the (nearest-resized) label grid
    maps = [embed_padded(tiny_model, img)[0][0] for img, _ in data]
    grid = F.interpolate(labels[:, None].float(), size=(32, 32), mode="nearest")[:, 0].long()
    for row, c in zip(emb, lab.tolist()):
        hits = [(m.permute(1, 2, 0)[g == c] - row).abs().amax(1).min() for m, g in zip(maps, grid)]
        assert min(hits) < 1e-5
    with pytest.raises(ValueError, match="max_images"):
        collect_pixel_embeddings(tiny_model, data, max_images=0)


def test_collect_logits_all_pixels_match_the_forward_pass(tiny_model, data, images, labels):
    logits, target = collect_logits(tiny_model, data, NAMES, pixels_per_image=None)
    valid = labels != 255
    assert logits.shape == (int(valid.sum()), 3) and torch.equal(target, labels[valid])
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model(images, tiny_model.encode_text(NAMES))  # (B, K, H, W)
    torch.testing.assert_close(logits, ref.permute(0, 2, 3, 1)[valid], rtol=1e-4, atol=1e-4)


def test_collect_logits_subsamples_per_image_deterministically(tiny_model, data):
    a = collect_logits(tiny_model, data, NAMES, pixels_per_image=10, seed=1)
    b = collect_logits(tiny_model, data, NAMES, pixels_per_image=10, seed=1)
    assert a[0].shape == (20, 3) and (a[1] != 255).all()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    full_logits, full_target = collect_logits(tiny_model, data[:1], NAMES, pixels_per_image=None)
    first = a[0][:10]  # rows of image 0 are a subset of its full rows
    assert all((full_logits - r).abs().amax(1).min() < 1e-6 for r in first)


def test_collect_logits_rejects_labels_beyond_the_label_list(tiny_model, data):
    with pytest.raises(ValueError, match=r"class indices \[2\] but only 2 labels"):
        collect_logits(tiny_model, data, NAMES[:2])
    with pytest.raises(ValueError, match="pixels_per_image"):
        collect_logits(tiny_model, data, NAMES, pixels_per_image=0)


def test_collect_examples(tiny_model, data, images, labels):
    vocab = [*NAMES, "dog", "water"]
    [ex] = collect_examples(tiny_model, data, NAMES, [1], vocabulary=vocab)
    assert ex.index == 1 and ex.image.dtype == np.uint8 and ex.image.shape == (64, 64, 3)
    np.testing.assert_array_equal(ex.target, labels[1].numpy())
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model(images[1:2], tiny_model.encode_text(NAMES))[0]
    torch.testing.assert_close(ex.logits, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ex.pred, ref.argmax(0).numpy())
    assert ex.nearest.shape == (64, 64) and ex.nearest.max() < len(vocab)
    assert ((ex.nearest_sim >= -1 - 1e-5) & (ex.nearest_sim <= 1 + 1e-5)).all()
    # with the class names as the whole vocabulary the nearest text is the argmax of the (scaled cosine) logits
    [same] = collect_examples(tiny_model, data, NAMES, [1], vocabulary=NAMES)
    assert (same.nearest == same.pred).mean() > 0.999
    [plain] = collect_examples(tiny_model, data, NAMES, [0])
    assert plain.nearest is None and plain.nearest_sim is None
    with pytest.raises(IndexError, match="out of range"):
        collect_examples(tiny_model, data, NAMES, [2])


def test_bad_items_are_named(tiny_model):
    with pytest.raises(ValueError, match=r"dataset\[0\] image must be"):
        list(iter_pixel_embeddings(tiny_model, [(torch.zeros(64, 64), torch.zeros(64, 64))]))
    with pytest.raises(ValueError, match=r"dataset\[0\] label must be"):
        list(iter_pixel_embeddings(tiny_model, [(torch.zeros(3, 64, 64), torch.zeros(32, 32))]))
