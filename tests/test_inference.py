"""Inference modes and the cached-feature Predictor on the tiny random model."""

from __future__ import annotations

import pytest
import torch

from lseg_nb.engine.inference import (
    Predictor,
    _window_starts,
    eval_mode,
    predict_logits,
    predict_logits_multi,
)

LABELS = ["sky", "cow", "grass"]


@pytest.fixture
def odd_images() -> torch.Tensor:
    return torch.randn(2, 3, 50, 70, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("mode", ["single", "sliding", "multiscale"])
def test_output_shapes_non_multiple_sizes(tiny_model, odd_images, mode):
    text = tiny_model.encode_text(LABELS)
    out = predict_logits(tiny_model, odd_images, text, mode=mode, crop_size=48, scales=(0.75, 1.25))
    assert out.shape == (2, 3, 50, 70)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_single_equals_forward_on_multiple_size(tiny_model, images):
    text = tiny_model.encode_text(LABELS)
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model(images, text)
    torch.testing.assert_close(predict_logits(tiny_model, images, text), ref)


def test_single_pads_and_crops(tiny_model, odd_images):
    """A 50x70 image is zero-padded to 64x96 (multiples of 32): logits are the crop of the padded forward."""
    text = tiny_model.encode_text(LABELS)
    padded = torch.nn.functional.pad(odd_images, (0, 26, 0, 14))
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model(padded, text)[..., :50, :70]
    torch.testing.assert_close(predict_logits(tiny_model, odd_images, text), ref)


def test_sliding_with_large_crop_equals_single(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    single = predict_logits(tiny_model, odd_images, text, "single")
    sliding = predict_logits(tiny_model, odd_images, text, "sliding", crop_size=96)
    torch.testing.assert_close(sliding, single)


def test_sliding_one_window_per_position_equals_crops(tiny_model):
    """With stride == crop the windows tile the image, so each tile's logits are its own single pass."""
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    text = tiny_model.encode_text(LABELS)
    out = predict_logits(tiny_model, x, text, "sliding", crop_size=32, stride_ratio=1.0)
    tile = predict_logits(tiny_model, x[..., 32:64, 64:96], text, "single")
    torch.testing.assert_close(out[..., 32:64, 64:96], tile)


def test_window_starts_cover_and_end_at_border():
    assert _window_starts(100, 48, 32) == [0, 32, 52]
    assert _window_starts(48, 48, 32) == [0]
    assert _window_starts(81, 48, 32) == [0, 32, 33]


def test_multiscale_identity_equals_single(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    single = predict_logits(tiny_model, odd_images, text, "single")
    ms = predict_logits(tiny_model, odd_images, text, "multiscale", scales=(1.0,), flip=False, crop_size=480)
    torch.testing.assert_close(ms, single)


def test_multiscale_flip_equivariance(tiny_model, odd_images):
    """Averaging a view with its mirror makes the prediction of the mirrored image the mirrored prediction."""
    text = tiny_model.encode_text(LABELS)
    kw = dict(mode="multiscale", scales=(0.75, 1.0), flip=True, crop_size=480)
    x = odd_images[:1]
    out = predict_logits(tiny_model, x, text, **kw)
    out_flipped = predict_logits(tiny_model, x.flip(-1), text, **kw)
    torch.testing.assert_close(out_flipped, out.flip(-1), atol=1e-5, rtol=1e-5)


def test_multi_label_sets_match_separate_calls(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    x = odd_images[:1]
    both = predict_logits_multi(tiny_model, x, [text, text[[2, 0]]], "sliding", crop_size=48)
    torch.testing.assert_close(both[0], predict_logits(tiny_model, x, text, "sliding", crop_size=48))
    torch.testing.assert_close(both[1], both[0][:, [2, 0]])


def test_mode_restored_and_no_grad(tiny_model, images):
    tiny_model.train()
    tiny_model.image_encoder.eval()  # a per-submodule mode (e.g. frozen backbone) must survive too
    out = predict_logits(tiny_model, images, tiny_model.encode_text(LABELS))
    assert tiny_model.training and tiny_model.decoder.training and not tiny_model.image_encoder.training
    assert not out.requires_grad
    with eval_mode(tiny_model):
        assert not tiny_model.decoder.training
    assert tiny_model.decoder.training


def test_bad_inputs(tiny_model, images):
    text = tiny_model.encode_text(LABELS)
    with pytest.raises(ValueError, match="mode must be"):
        predict_logits(tiny_model, images, text, mode="tiled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        predict_logits(tiny_model, images[0], text)
    with pytest.raises(ValueError, match="text embeddings"):
        predict_logits(tiny_model, images, torch.randn(3, 7))
    with pytest.raises(ValueError, match="scales"):
        predict_logits(tiny_model, images, text, mode="multiscale", scales=())


def test_size_multiple(tiny_model, tiny_vit):
    assert tiny_model.size_multiple == 32
    assert tiny_vit.size_multiple == 16


def test_vit_non_multiple_size(tiny_vit):
    x = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    out = predict_logits(tiny_vit, x, tiny_vit.encode_text(LABELS), "sliding", crop_size=32)
    assert out.shape == (1, 3, 40, 56) and torch.isfinite(out).all()


def test_predictor_matches_forward(tiny_model, images):
    text = tiny_model.encode_text(LABELS)
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model(images[:1], text)[0]
    p = Predictor(tiny_model)
    p.set_image(images[0])
    torch.testing.assert_close(p.predict(LABELS), ref)
    assert torch.equal(p.predict_mask(LABELS), ref.argmax(0))
    assert p.image_size == (64, 64)


def test_predictor_non_multiple_matches_single(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    p = Predictor(tiny_model)
    p.set_image(odd_images[1:])
    torch.testing.assert_close(p.predict(text), predict_logits(tiny_model, odd_images[1:], text)[0])


def test_predictor_reuses_image_features(tiny_model, images):
    calls = []
    handle = tiny_model.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        p = Predictor(tiny_model)
        p.set_image(images[0])
        assert len(calls) == 1
        a = p.predict(["sky", "cow"])
        b = p.predict(["cow", "tree", "sky", "water"])
        assert len(calls) == 1
    finally:
        handle.remove()
    assert a.shape == (2, 64, 64) and b.shape == (4, 64, 64)
    torch.testing.assert_close(b[[2, 0]], a)  # no head block: logits per label do not depend on the set


def test_predictor_requires_image(tiny_model):
    with pytest.raises(RuntimeError, match="set_image"):
        Predictor(tiny_model).predict(LABELS)
    with pytest.raises(ValueError, match="one image"):
        Predictor(tiny_model).set_image(torch.randn(2, 3, 32, 32))


def test_predictor_similarity_is_the_unscaled_cosine(tiny_model, odd_images):
    p = Predictor(tiny_model)
    with pytest.raises(RuntimeError, match="set_image"):
        p.similarity(LABELS)
    p.set_image(odd_images[1])
    sim = p.similarity(LABELS)
    assert sim.shape == (3, *odd_images.shape[-2:]) and sim.abs().max() <= 1 + 1e-6
    # no head block here: logits are the cosine times the logit scale, upsampled the same way
    torch.testing.assert_close(sim * tiny_model.head.scale, p.predict(LABELS), rtol=1e-4, atol=1e-4)
