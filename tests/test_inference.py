"""Inference modes and the cached-feature Predictor on the tiny random model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lseg_nb.config import OFFICIAL_EVAL, EvalConfig
from lseg_nb.engine.inference import (
    _window_starts,
    eval_mode,
    predict_logits,
    predict_logits_multi,
    scaled_size,
    window_weight,
)
from lseg_nb.engine.postprocess import short_side_size
from lseg_nb.engine.predictor import Predictor
from tests.conftest import with_crop

LABELS = ["sky", "cow", "grass"]


@pytest.fixture
def odd_images() -> torch.Tensor:
    return torch.randn(2, 3, 50, 70, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("mode", ["single", "sliding", "multiscale"])
def test_output_shapes_non_multiple_sizes(tiny_model, odd_images, mode):
    text = tiny_model.encode_text(LABELS)
    out = predict_logits(
        with_crop(tiny_model, 48), odd_images, text, EvalConfig(mode=mode, scales=(0.75, 1.25))
    )
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
    single = predict_logits(tiny_model, odd_images, text, EvalConfig(mode="single"))
    sliding = predict_logits(with_crop(tiny_model, 96), odd_images, text, EvalConfig(mode="sliding"))
    torch.testing.assert_close(sliding, single)


def test_sliding_one_window_per_position_equals_crops(tiny_model):
    """With stride == crop the windows tile the image, so each tile's logits are its own single pass."""
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    text = tiny_model.encode_text(LABELS)
    out = predict_logits(with_crop(tiny_model, 32), x, text, EvalConfig(mode="sliding", stride_ratio=1.0))
    tile = predict_logits(tiny_model, x[..., 32:64, 64:96], text)
    torch.testing.assert_close(out[..., 32:64, 64:96], tile)


def test_window_starts_cover_and_end_at_border():
    assert _window_starts(100, 48, 32) == [0, 32, 52]
    assert _window_starts(48, 48, 32) == [0]
    assert _window_starts(81, 48, 32) == [0, 32, 33]


def test_multiscale_identity_equals_single(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    single = predict_logits(tiny_model, odd_images, text, EvalConfig(mode="single"))
    ms = predict_logits(
        with_crop(tiny_model, 480), odd_images, text, EvalConfig(mode="multiscale", scales=(1.0,), flip=False)
    )
    torch.testing.assert_close(ms, single)


def test_multiscale_flip_equivariance(tiny_model, odd_images):
    """Averaging a view with its mirror makes the prediction of the mirrored image the mirrored prediction."""
    text = tiny_model.encode_text(LABELS)
    protocol = EvalConfig(mode="multiscale", scales=(0.75, 1.0), flip=True)
    x = odd_images[:1]
    model = with_crop(tiny_model, 480)
    out = predict_logits(model, x, text, protocol)
    out_flipped = predict_logits(model, x.flip(-1), text, protocol)
    torch.testing.assert_close(out_flipped, out.flip(-1), atol=1e-5, rtol=1e-5)


def test_multi_label_sets_match_separate_calls(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    x = odd_images[:1]
    both = predict_logits_multi(
        with_crop(tiny_model, 48), x, [text, text[[2, 0]]], EvalConfig(mode="sliding")
    )
    torch.testing.assert_close(
        both[0], predict_logits(with_crop(tiny_model, 48), x, text, EvalConfig(mode="sliding"))
    )
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
    with pytest.raises(ValueError, match="mode=.tiled. is not one of"):
        predict_logits(tiny_model, images, text, EvalConfig(mode="tiled"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        predict_logits(tiny_model, images[0], text)
    with pytest.raises(ValueError, match="text embeddings"):
        predict_logits(tiny_model, images, torch.randn(3, 7))
    with pytest.raises(ValueError, match="scales"):
        predict_logits(tiny_model, images, text, EvalConfig(mode="multiscale", scales=()))
    with pytest.raises(ValueError, match="scales"):  # a scale derived from user input stays bounded
        predict_logits(tiny_model, images, text, EvalConfig(mode="multiscale", scales=(200,)))


def test_size_multiple(tiny_model, tiny_vit):
    assert tiny_model.size_multiple == 32
    assert tiny_vit.size_multiple == 16


def test_vit_non_multiple_size(tiny_vit):
    x = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    out = predict_logits(with_crop(tiny_vit, 32), x, tiny_vit.encode_text(LABELS), EvalConfig(mode="sliding"))
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


# ---------------------------------------------------------------- batched windows vs window-by-window


def _reference(
    model, x, text, crop, stride_ratio=2 / 3, scales=None, flip=False, base_size=None, weight="uniform"
):
    """The protocol spelled out one window at a time with the plain forward pass (no batching, no fusion):
    pad to the size multiple, crop back; windows averaged over overlaps (each window's logits times its
    ``window_weight``, divided by the summed weights); views resized back and averaged."""
    model.eval()
    w_win = window_weight(crop, crop, weight)
    m = model.size_multiple

    def single(v):
        h, w = v.shape[-2:]
        vp = F.pad(v, (0, -w % m, 0, -h % m))
        return model(vp, text)[..., :h, :w]

    def sliding(v):
        h, w = v.shape[-2:]
        if h <= crop and w <= crop:
            return single(v)
        vp = F.pad(v, (0, max(crop - w, 0), 0, max(crop - h, 0)))
        ph, pw = vp.shape[-2:]
        out, count = torch.zeros(v.shape[0], text.shape[0], ph, pw), torch.zeros(ph, pw)
        stride = int(crop * stride_ratio)
        for h0 in _window_starts(ph, crop, stride):
            for w0 in _window_starts(pw, crop, stride):
                win = single(vp[..., h0 : h0 + crop, w0 : w0 + crop])
                out[..., h0 : h0 + crop, w0 : w0 + crop] += win * w_win
                count[h0 : h0 + crop, w0 : w0 + crop] += w_win
        return (out / count)[..., :h, :w]

    with torch.no_grad():
        if scales is None:
            return sliding(x)
        h, w = x.shape[-2:]
        total, n = torch.zeros(x.shape[0], text.shape[0], h, w), 0
        for s in scales:
            xs = F.interpolate(x, size=scaled_size(h, w, s, base_size), mode="bilinear", align_corners=True)
            for flipped in (False, True) if flip else (False,):
                logit = sliding(xs.flip(-1) if flipped else xs)
                logit = logit.flip(-1) if flipped else logit
                total += F.interpolate(logit, size=(h, w), mode="bilinear", align_corners=True)
                n += 1
        return total / n


@pytest.mark.parametrize("window_batch", [1, 64])
def test_batched_sliding_with_overlap_equals_window_by_window(tiny_model, window_batch):
    x = torch.randn(2, 3, 48, 80, generator=torch.Generator().manual_seed(7))  # 2 x 4 windows, stride 21 < 32
    text = tiny_model.encode_text(LABELS)
    out = predict_logits(
        with_crop(tiny_model, 32), x, text, EvalConfig(mode="sliding", window_batch=window_batch)
    )
    torch.testing.assert_close(out, _reference(tiny_model, x, text, crop=32), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("model_name", "window_batch"), [("tiny_model", 1), ("tiny_model", 5), ("block_model", 64)]
)
def test_batched_multiscale_flip_equals_window_by_window(request, model_name, window_batch):
    """Base size 48, window 32 on a 40x56 image: scale 0.5 fits one window (width 24, padded: the mirror runs
    apart), 1.0 slides over two symmetric window columns without padding (each window fused with its mirror at the
    embedding resolution), 1.5 over three asymmetric columns (the mirrored view is windowed on its own)."""
    model = request.getfixturevalue(model_name)
    x = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(8))
    text = model.encode_text(LABELS)
    scales = (0.5, 1.0, 1.5)
    ref = _reference(model, x, text, crop=32, scales=scales, flip=True, base_size=48)
    protocol = EvalConfig(mode="multiscale", scales=scales, base_size=48, window_batch=window_batch)
    out = predict_logits(with_crop(model, 32), x, text, protocol)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_fused_single_window_mirror_equals_window_by_window(block_model):
    """A 32x64 view fits one window with no padding: the image and its mirror are fused before upsampling."""
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(9))
    text = block_model.encode_text(LABELS)
    out = predict_logits(
        with_crop(block_model, 64), x, text, EvalConfig(mode="multiscale", scales=(1.0,), flip=True)
    )
    ref = _reference(block_model, x, text, crop=64, scales=(1.0,), flip=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_scaled_size_matches_the_official_sizes():
    """Official rule (base 520): long side ceil(520 s), short side int(h * long / w + 0.5); 512x683 image."""
    longs = [scaled_size(512, 683, s, 520)[1] for s in OFFICIAL_EVAL.scales]
    assert longs == [260, 390, 520, 650, 780, 910]
    assert [scaled_size(512, 683, s, 520)[0] for s in OFFICIAL_EVAL.scales] == [
        int(512 * long / 683 + 0.5) for long in longs
    ]
    assert scaled_size(512, 683, 1.0, 520) == (390, 520)
    assert scaled_size(683, 512, 1.75, 520) == (910, 682)  # portrait: the height is the long side
    assert scaled_size(50, 70, 0.5, None) == (25, 35)  # relative


def test_bf16_autocast_on_cpu_is_close_but_not_identical(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    model = with_crop(tiny_model, 48)
    fp32 = predict_logits(model, odd_images, text, EvalConfig(mode="sliding"))
    bf16 = predict_logits(model, odd_images, text, EvalConfig(mode="sliding", amp="bf16"))
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().max() < 0.5  # logits span about +-14 (scale 1/0.07)
    assert (bf16.argmax(1) == fp32.argmax(1)).float().mean() > 0.9


def test_amp_choices_are_checked(tiny_model, images):
    text = tiny_model.encode_text(LABELS)
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        predict_logits(tiny_model, images, text, EvalConfig(amp="fp16"))
    with pytest.raises(ValueError, match="amp=.fp8. is not one of"):
        predict_logits(tiny_model, images, text, EvalConfig(amp="fp8"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        Predictor(tiny_model, EvalConfig(amp="fp16"))
    with pytest.raises(ValueError, match="window_batch"):
        predict_logits(tiny_model, images, text, EvalConfig(window_batch=0))


def test_protocol_names_every_number_changing_setting():
    assert EvalConfig(amp="bf16").name == "single, bf16 autocast" and EvalConfig().name == "single"
    tf = EvalConfig(
        mode="sliding", stride_ratio=0.5, short_side=336, logit_scale=40, prob_thd=0.1, pamr_steps=10
    )
    assert tf.describe(224) == (
        "sliding(stride 0.50, window 224), short side 336 (long <= 2048), logit scale 40, prob_thd 0.1, "
        "PAMR 10 steps (8, 16)"
    )
    # the key changes with anything that changes numbers, never with speed-only options
    assert EvalConfig().key == "single" == EvalConfig(window_batch=2, compile=True, bootstrap=0).key
    assert EvalConfig(amp="bf16").key != EvalConfig().key != EvalConfig(calibrate_seen=True).key
    assert EvalConfig(mode="sliding").key == "sliding" and tf.key.startswith("sliding-")


def test_short_side_resizes_the_input_and_resizes_logits_back(tiny_model, odd_images):
    text = tiny_model.encode_text(LABELS)
    out = predict_logits(tiny_model, odd_images, text, EvalConfig(short_side=100))
    assert out.shape == (2, 3, 50, 70)
    size = short_side_size(50, 70, 100)
    x = F.interpolate(odd_images, size=size, mode="bilinear", align_corners=False)
    ref = F.interpolate(
        predict_logits(tiny_model, x, text), size=(50, 70), mode="bilinear", align_corners=True
    )
    torch.testing.assert_close(out, ref)


def test_work_is_bounded_before_any_tensor_is_made(tiny_model):
    text = tiny_model.encode_text(LABELS)
    x = torch.zeros(1, 3, 2000, 2000)
    with pytest.raises(ValueError, match="Mpx limit of any image"):
        predict_logits(tiny_model, x, text, EvalConfig(mode="multiscale", scales=(4.0,)))
    with pytest.raises(ValueError, match="short-side"):
        predict_logits(tiny_model, x[..., :100, :], text, EvalConfig(short_side=2000, long_cap=100_000))


def test_smooth_window_weights_are_symmetric_and_never_zero():
    w = window_weight(8, 6, "smooth")
    assert w.shape == (8, 6) and w.min() > 0.01 and torch.equal(w, w.flip(-1)) and torch.equal(w, w.flip(0))
    assert w[3:5, 2:4].min() > w[0].max()  # the centre counts more than the border
    assert torch.equal(window_weight(4, 4, "uniform"), torch.ones(4, 4))


def test_smooth_windows_agree_with_uniform_ones_where_one_window_covers(tiny_model):
    """Where a single window covers a pixel its weight cancels out; in overlaps the weighted mean differs."""
    x = torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(4))
    text = tiny_model.encode_text(LABELS)
    model = with_crop(tiny_model, 32)
    uniform = predict_logits(model, x, text, EvalConfig(mode="sliding", stride_ratio=0.5))
    smooth = predict_logits(
        model, x, text, EvalConfig(mode="sliding", stride_ratio=0.5, window_weight="smooth")
    )
    torch.testing.assert_close(smooth[..., :16], uniform[..., :16])  # only the first window covers x < 16
    assert not torch.allclose(smooth[..., 16:32], uniform[..., 16:32])


def test_compile_goes_through_torch_compile_once_and_changes_nothing(tiny_model, images, monkeypatch):
    """compile=True wraps the image encoder in torch.compile once per model class (the eager backend keeps this
    fast on CPU; inductor is the default on a real run)."""
    from lseg_nb.engine import inference

    compiled: list[object] = []
    real = torch.compile

    def spy(fn, **kw):
        compiled.append(fn)
        return real(fn, **{**kw, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", spy)
    monkeypatch.setattr(inference, "_COMPILED", {})
    text = tiny_model.encode_text(LABELS)
    ref = predict_logits(tiny_model, images, text)
    out = predict_logits(tiny_model, images, text, EvalConfig(compile=True))
    assert len(compiled) == 1 and compiled[0] is type(tiny_model).encode_image
    torch.testing.assert_close(out, ref)
    p = Predictor(tiny_model, EvalConfig(compile=True))
    p.set_image(images[0])
    torch.testing.assert_close(p.predict(text), ref[0])
    assert len(compiled) == 1
