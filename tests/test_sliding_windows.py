"""Window blending (``EvalConfig.window_weight``) against the window-by-window reference, the seams it removes,
and ``lseg-nb predict``'s report of the mode and the sizes it ran at."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from lseg_nb.apps.cli import main
from lseg_nb.checkpoints import save_lseg_nb
from lseg_nb.config import EvalConfig, TextEncoderConfig, TrainConfig, get_config, save_json
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.predictor import describe_inference
from lseg_nb.models import create_model
from tests.conftest import with_crop
from tests.test_inference import LABELS, _reference


@pytest.mark.parametrize("window_batch", [1, 64])
def test_uniform_windows_are_bit_identical_to_plain_averaging(tiny_model, window_batch):
    """The default keeps every published number: uniform weights are the plain overlap average, to the bit."""
    x = torch.randn(2, 3, 48, 80, generator=torch.Generator().manual_seed(7))
    text = tiny_model.encode_text(LABELS)
    protocol = EvalConfig(mode="sliding", window_batch=window_batch)
    assert protocol.window_weight == "uniform" == EvalConfig().window_weight
    out = predict_logits(with_crop(tiny_model, 32), x, text, protocol)
    assert torch.equal(out, _reference(tiny_model, x, text, crop=32))


@pytest.mark.parametrize("window_batch", [1, 64])
def test_smooth_sliding_equals_its_window_by_window_reference(tiny_model, window_batch):
    x = torch.randn(2, 3, 48, 80, generator=torch.Generator().manual_seed(7))  # 2 x 4 overlapping windows
    text = tiny_model.encode_text(LABELS)
    protocol = EvalConfig(mode="sliding", window_weight="smooth", window_batch=window_batch)
    out = predict_logits(with_crop(tiny_model, 32), x, text, protocol)
    ref = _reference(tiny_model, x, text, crop=32, weight="smooth")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, _reference(tiny_model, x, text, crop=32), atol=1e-3)  # the weight acts


@pytest.mark.parametrize(("model_name", "window_batch"), [("tiny_model", 5), ("block_model", 64)])
def test_smooth_multiscale_flip_equals_its_window_by_window_reference(request, model_name, window_batch):
    """The batched and mirror-fused paths (see test_batched_multiscale_flip_equals_window_by_window) with the
    smooth weight: fusing a window with its mirror before upsampling needs a mirror-symmetric weight."""
    model = request.getfixturevalue(model_name)
    x = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(8))
    text = model.encode_text(LABELS)
    scales = (0.5, 1.0, 1.5)
    ref = _reference(model, x, text, crop=32, scales=scales, flip=True, base_size=48, weight="smooth")
    protocol = EvalConfig(
        mode="multiscale", scales=scales, base_size=48, window_weight="smooth", window_batch=window_batch
    )
    torch.testing.assert_close(
        predict_logits(with_crop(model, 32), x, text, protocol), ref, atol=1e-5, rtol=1e-5
    )


class _WindowMean(nn.Module):
    """A stand-in for a small-crop model at its worst: every window sees only its own mean colour, so each
    window's logits are one constant and any disagreement between windows shows as a seam."""

    size_multiple = 8
    text_dim = 3

    def __init__(self, crop: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(crop_size=crop)
        self.unit = nn.Parameter(torch.ones(()))  # a parameter: inference reads device and dtype from it

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 8, x.shape[-1] // 8
        return (x.mean((2, 3), keepdim=True) * self.unit).expand(-1, -1, h, w)

    def logits_from_embeddings(
        self, emb: torch.Tensor, text: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        return self.upsample_logits(torch.einsum("bdhw,kd->bkhw", emb, text), size)

    def upsample_logits(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)


def _seam(logits: torch.Tensor) -> float:
    """The largest jump between neighbouring columns."""
    return float(logits.diff(dim=-1).abs().max())


def test_smooth_windows_remove_the_seams_of_disagreeing_windows():
    """A 32x64 horizontal ramp, windows of 32 at stride 16 (starts 0, 16, 32): window means a0 < a1 < a2.
    Uniform averaging is a staircase a0 | (a0+a1)/2 | (a1+a2)/2 | a2 whose largest jump, (a2 - a0)/2, is at
    column 32, where the first window ends as the last begins; the smooth weight (0.1 at a window's border)
    turns the steps into ramps."""
    model = _WindowMean(32)
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 32, 64).contiguous()
    text = torch.tensor([[1.0, 0.0, 0.0]])
    uniform = predict_logits(model, ramp, text, EvalConfig(mode="sliding", stride_ratio=0.5))
    smooth = predict_logits(
        model, ramp, text, EvalConfig(mode="sliding", stride_ratio=0.5, window_weight="smooth")
    )
    means = [float(ramp[0, 0, 0, a : a + 32].mean()) for a in (0, 16, 32)]
    assert _seam(uniform) == pytest.approx((means[2] - means[0]) / 2, abs=1e-6)
    assert _seam(smooth) < _seam(uniform) / 4
    # where one window alone covers a pixel both agree: the weight cancels
    torch.testing.assert_close(smooth[..., :16], uniform[..., :16])


def test_describe_inference_names_the_mode_sizes_and_windows(tiny_model):
    model = with_crop(tiny_model, 96)
    assert (
        describe_inference(model, EvalConfig(), 50, 70) == "single: 50x70 image, one pass (padded to 64x96)"
    )
    sliding = EvalConfig(mode="sliding", window_weight="smooth")
    assert describe_inference(model, sliding, 120, 200) == (
        "sliding(stride 0.67, window 96, smooth windows): 120x200 image, 2x3 windows of 96x96"
    )
    assert describe_inference(model, sliding, 64, 96) == (
        "sliding(stride 0.67, window 96, smooth windows): 64x96 image, one pass"
    )
    ms = EvalConfig(mode="multiscale", scales=(0.5, 1.5), short_side=100)
    assert describe_inference(model, ms, 200, 300) == (
        "multiscale(relative, 2 scales, flip, window 96), short side 100 (long <= 2048): 200x300 image resized "
        "to 100x150; scales 0.5 -> 50x75 (one pass (padded to 64x96)), 1.5 -> 150x225 (2x4 windows of 96x96); "
        "each view also mirrored"
    )
    # the windows described are the windows run: one encoder call per window at window_batch=1
    calls = []
    handle = model.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        text = model.encode_text(LABELS)
        predict_logits(model, torch.zeros(1, 3, 120, 200), text, EvalConfig(mode="sliding", window_batch=1))
    finally:
        handle.remove()
    assert len(calls) == 2 * 3


def test_predict_prints_the_mode_and_the_resolution_it_used(tmp_path, capsys):
    """It used to print only the protocol's name, without the window or the sizes it ran at."""
    model = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    run = tmp_path / "run"
    run.mkdir()
    save_json(TrainConfig(model=model, run_dir=str(run)), run / "config.json")
    torch.manual_seed(0)
    save_lseg_nb(create_model(model), run / "model.safetensors")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((80, 150, 3), np.uint8)).save(image)
    args = ["predict", "--weights", str(run), "--image", str(image), "--labels", "a", "b"]
    assert main([*args, "--out", str(tmp_path / "p.png"), "--eval.mode", "sliding"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert (
        first
        == f"protocol: sliding(stride 0.67, window 64): 80x150 image, 2x4 windows of 64x64; image {image}"
    )
