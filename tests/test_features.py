"""Feature recipes against direct computations, stored features against the model's own predictions.

Each recipe's expected features are rebuilt here step by step from ``model.encode_image`` (resize, pad with the
stated value, windows listed by hand), never through the module's helpers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.diagnostics import nearest_text_map
from lseg_nb.engine.feature_store import (
    load_features,
    load_text_embeddings,
    read_feature_manifest,
    save_features,
    write_feature_manifest,
)
from lseg_nb.engine.features import (
    FeatureRecipe,
    extract_features,
    model_input,
    model_label_map,
)
from lseg_nb.engine.provenance import config_sha256


def nearest_text(features, text):
    """The diagnostics' nearest-text map (float32 cosine argmax), as a notebook computes it from stored features."""
    return nearest_text_map(features, text, [str(i) for i in range(text.shape[0])])[0]


H, W = 40, 56  # not multiples of the CNN's stride 32


@pytest.fixture
def image() -> np.ndarray:
    return (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)


def _normalised(model, image):
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(model.config.mean).view(3, 1, 1), torch.tensor(model.config.std).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def _black_canvas(model, h, w):
    black = -torch.tensor(model.config.mean) / torch.tensor(model.config.std)
    return black.view(1, 3, 1, 1).expand(1, 3, h, w).clone()


def _enc(model, x):
    with torch.no_grad():
        return model.eval().encode_image(x)


def test_native_is_the_padded_single_pass_grid(tiny_model, image):
    x = _normalised(tiny_model, image)
    expected = _enc(tiny_model, F.pad(x, (0, 64 - W, 0, 64 - H)))[0, :, : H // 2, : W // 2]
    got = extract_features(tiny_model, image, "native")
    assert got.shape == (16, H // 2, W // 2) and got.dtype == torch.float32
    assert torch.allclose(got, F.normalize(expected, dim=0), atol=1e-6)
    # a normalised tensor gives the same features as the uint8 array
    assert torch.allclose(extract_features(tiny_model, x[0]), got, atol=1e-6)


def test_openscene_recipe_gives_features_at_the_image_resolution(tiny_model, image):
    """resize x2 (align_corners), pad black to the 2L square (112 -> 128, the CNN multiple), + mirrored pass."""
    x = _normalised(tiny_model, image)
    canvas = _black_canvas(tiny_model, 128, 128)
    canvas[..., : 2 * H, : 2 * W] = F.interpolate(x, size=(2 * H, 2 * W), mode="bilinear", align_corners=True)
    summed = _enc(tiny_model, canvas) + _enc(tiny_model, canvas.flip(-1)).flip(-1)
    expected = F.normalize(summed[0, :, :H, :W], dim=0)
    got = extract_features(tiny_model, image, "openscene")
    assert got.shape == (16, H, W)
    assert torch.allclose(got, expected, atol=1e-6)
    # the mirrored pass matters: without it the result differs
    assert not torch.allclose(
        extract_features(tiny_model, image, FeatureRecipe("openscene")), expected, atol=1e-3
    )


def test_vlmaps_recipe_averages_upsampled_windows(tiny_model, image):
    """long side 96 -> (69, 96); 64 px windows at stride 42: rows 0-64 and 42-69, columns 0-64 and 42-96."""
    recipe = FeatureRecipe("vlmaps", base_size=96, crop_size=64)
    x = _normalised(tiny_model, image)
    resized = F.interpolate(x, size=(69, 96), mode="bilinear", align_corners=True)
    total, count = torch.zeros(1, 16, 69, 96), torch.zeros(1, 1, 69, 96)
    for h0, h1 in [(0, 64), (42, 69)]:
        for w0, w1 in [(0, 64), (42, 96)]:
            tile = _black_canvas(tiny_model, 64, 64)
            tile[..., : h1 - h0, : w1 - w0] = resized[..., h0:h1, w0:w1]
            up = F.interpolate(_enc(tiny_model, tile), size=(64, 64), mode="bilinear", align_corners=True)
            total[..., h0:h1, w0:w1] += up[..., : h1 - h0, : w1 - w0]
            count[..., h0:h1, w0:w1] += 1
    got = extract_features(tiny_model, image, recipe)
    assert got.shape == (16, 69, 96)
    assert torch.allclose(got, F.normalize((total / count)[0], dim=0), atol=1e-5)


def test_vit_recipes_pad_to_the_patch_grid(tiny_vit, image):
    x = _normalised(tiny_vit, image)
    expected = _enc(tiny_vit, F.pad(x, (0, 64 - W, 0, 48 - H)))[0, :, : H // 2, : W // 2]
    assert torch.allclose(extract_features(tiny_vit, image), F.normalize(expected, dim=0), atol=1e-6)
    assert extract_features(tiny_vit, image, "openscene").shape == (16, H, W)


def test_features_at_image_size_give_the_models_own_prediction(tiny_model, image, text_encoder):
    """Scoring features resized to the image equals argmax of the model's dense single-pass logits."""
    text = text_encoder.encode(["sky", "grass", "cow", "water"])
    feats = extract_features(tiny_model, image, "native", size=(H, W))
    assert feats.shape == (16, H, W)
    assert torch.allclose(feats.norm(dim=0), torch.ones(H, W), atol=1e-5)
    assert torch.equal(nearest_text(feats, text), model_label_map(tiny_model, image, text))


def test_stored_features_reproduce_the_model_argmax_at_their_resolution(
    tiny_model, image, text_encoder, tmp_path
):
    text = text_encoder.encode(["sky", "grass", "cow", "water"])
    x = F.pad(_normalised(tiny_model, image), (0, 64 - W, 0, 64 - H))
    with torch.no_grad():
        emb = tiny_model.eval().encode_image(x)
        logits = tiny_model.logits_from_embeddings(emb, text, emb.shape[-2:])[0, :, : H // 2, : W // 2]
    own = logits.argmax(0)
    shape = save_features(tmp_path / "img.npy", extract_features(tiny_model, image))
    assert shape == (16, H // 2, W // 2)
    stored = load_features(tmp_path / "img.npy")
    assert torch.equal(nearest_text(extract_features(tiny_model, image), text), own)  # float32: every pixel
    # float16 storage rounds cosines by < 1e-3: every pixel whose top-2 logits differ by more agrees
    top2 = logits.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) / tiny_model.head.scale > 2e-3
    assert clear.float().mean() > 0.9
    assert torch.equal(nearest_text(stored, text)[clear], own[clear])


def test_feature_files_are_float16_unit_vectors_written_atomically(tiny_model, image, tmp_path):
    feats = extract_features(tiny_model, image)
    save_features(tmp_path / "a" / "img.npy", feats)
    raw = np.load(tmp_path / "a" / "img.npy")
    assert raw.dtype == np.float16 and raw.shape == tuple(feats.shape)
    loaded = load_features(tmp_path / "a" / "img.npy")
    assert loaded.dtype == torch.float32
    assert torch.allclose(loaded.norm(dim=0), torch.ones(loaded.shape[1:]), atol=1e-3)
    assert torch.allclose(loaded, feats, atol=1e-3)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["img.npy"]  # no temporary file left
    with pytest.raises(ValueError, match=r"should end in \.npy"):
        save_features(tmp_path / "img.pt", feats)


def test_bad_feature_files_are_named(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="bad.npy"):
        load_features(tmp_path / "bad.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 5), np.float16))
    with pytest.raises(ValueError, match=r"flat.npy.*\(D, h, w\)"):
        load_features(tmp_path / "flat.npy")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_features(tmp_path / "missing.npy")


def test_manifest_records_model_recipe_resolution_and_texts(tiny_model, image, text_encoder, tmp_path):
    shape = save_features(tmp_path / "img.npy", extract_features(tiny_model, image, "openscene"))
    texts = ["sky", "grass"]
    write_feature_manifest(tmp_path, tiny_model, "openscene", files={"img.npy": shape}, texts=texts)
    m = read_feature_manifest(tmp_path)
    assert m["model"]["config_sha256"] == config_sha256(tiny_model.config)
    assert m["recipe"]["name"] == "openscene" and m["recipe"]["flip"] is True
    assert m["text_dim"] == 16 and m["files"] == {"img.npy": [16, H, W]} and m["dtype"] == "float16"
    assert "unit L2" in m["normalisation"] and m["model"]["mean"] == list(tiny_model.config.mean)
    stored_texts, emb = load_text_embeddings(tmp_path)
    assert stored_texts == texts
    assert torch.allclose(emb, F.normalize(text_encoder.encode(texts), dim=-1), atol=1e-6)
    json.loads((tmp_path / "features.json").read_text())  # plain JSON, no NaN


def test_bad_inputs_get_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="RGB uint8"):
        extract_features(tiny_model, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="unknown feature recipe"):
        extract_features(tiny_model, torch.zeros(3, 8, 8), "openseg")
    with pytest.raises(ValueError, match="size must be"):
        extract_features(tiny_model, torch.zeros(3, 8, 8), size=(0, 4))
    with pytest.raises(ValueError, match="one image"):
        model_input(tiny_model, torch.zeros(2, 3, 8, 8))
