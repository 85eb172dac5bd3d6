"""Model components: shapes, unit norms, frozen text encoder, gradient flow, named configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lseg_nb.config import ModelConfig
from lseg_nb.models import (
    MODEL_CONFIGS,
    OneHotTextEncoder,
    RandomTextEncoder,
    SentenceTransformerTextEncoder,
    create_model,
    list_models,
)
from lseg_nb.models.decoder import DPTDecoder
from lseg_nb.utils.errors import InputError


def test_named_configs_cover_the_paper_models():
    assert {"lseg_vitl16_384", "lseg_vitb16_384", "lseg_rn101", "lseg_small_cpu"} <= set(list_models())
    paper = MODEL_CONFIGS["lseg_vitl16_384"]
    assert paper.hooks == (5, 11, 17, 23) and paper.readout == "project" and paper.features == 256
    assert paper.text.kind == "open_clip" and paper.text.name == "ViT-B-32" and paper.mean == (0.5, 0.5, 0.5)
    assert paper.logit_scale == pytest.approx(1 / 0.07) and not paper.learnable_scale


def test_unknown_model_name_is_a_clear_error(text_encoder):
    with pytest.raises(KeyError, match="available"):
        create_model("lseg_vit_huge", text_encoder=text_encoder)


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_vit"])
def test_forward_shapes_and_unit_pixel_embeddings(fixture, request, images, text_encoder):
    model = request.getfixturevalue(fixture)
    text = text_encoder.encode(["grass", "sky", "cow"])
    emb = model.encode_image(images)
    assert emb.shape == (2, 16, 32, 32)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2, 32, 32), atol=1e-5)
    logits = model(images, text)
    assert logits.shape == (2, 3, 64, 64)
    # logits are scaled cosines: bounded by the fixed scale 1/0.07
    assert logits.abs().max() <= 1 / 0.07 + 1e-4


def test_vit_accepts_sizes_other_than_its_pretraining_size(tiny_vit, text_encoder):
    x = torch.randn(1, 3, 48, 80)
    assert tiny_vit(x, text_encoder.encode(["a", "b"])).shape == (1, 2, 48, 80)


def test_vit_rejects_sizes_not_divisible_by_patch(tiny_vit, text_encoder):
    with pytest.raises(ValueError, match="patch size 16"):
        tiny_vit(torch.randn(1, 3, 50, 64), text_encoder.encode(["a"]))


def test_wrong_text_dimension_is_explained(tiny_model, images):
    with pytest.raises(ValueError, match="same text encoder"):
        tiny_model(images, torch.randn(3, 7))


def test_gradients_reach_decoder_and_head_but_never_the_text_encoder(images, labels):
    import torch.nn.functional as F

    te = SentenceTransformerTextEncoder()
    model = create_model("lseg_small_cpu", text_encoder=te, features=8)
    model.train()
    text = model.encode_text(["grass", "sky", "cow"])
    loss = F.cross_entropy(model(images, text), labels, ignore_index=255)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert all(not p.requires_grad and p.grad is None for p in model.text_encoder.parameters())
    assert not model.text_encoder.training  # dropout stays off while the model trains
    assert not text.requires_grad


def test_per_image_label_sets_match_shared_label_set(tiny_model, images, text_encoder):
    text = text_encoder.encode(["a", "b"])
    shared = tiny_model.eval()(images, text)
    per_image = tiny_model(images, text.unsqueeze(0).expand(2, -1, -1))
    assert torch.allclose(shared, per_image, atol=1e-5)


def test_zero_shot_is_only_a_different_label_set(tiny_model, images, text_encoder):
    tiny_model.eval()
    full = tiny_model(images, text_encoder.encode(["a", "b", "c", "d"]))
    subset = tiny_model(images, text_encoder.encode(["c", "a"]))
    assert torch.allclose(subset[:, 0], full[:, 2], atol=1e-5)
    assert torch.allclose(subset[:, 1], full[:, 0], atol=1e-5)


@pytest.mark.parametrize("block", ["bottleneck", "depthwise"])
def test_spatial_regularisation_blocks_work_for_any_label_count(block, images, text_encoder):
    model = create_model(
        "lseg_small_cpu", text_encoder=text_encoder, features=8, head_block=block, block_depth=2
    )
    for k in (1, 5):
        assert model(images, text_encoder.encode([str(i) for i in range(k)])).shape == (2, k, 64, 64)
    assert sum(p.numel() for p in model.head.block.parameters()) == 10  # one shared 3x3 kernel + bias


def test_learnable_scale_is_a_parameter(text_encoder):
    fixed = create_model("lseg_small_cpu", text_encoder=text_encoder, features=8)
    learn = create_model("lseg_small_cpu", text_encoder=text_encoder, features=8, learnable_scale=True)
    assert "head.log_scale" not in dict(fixed.named_parameters())
    assert dict(learn.named_parameters())["head.log_scale"].requires_grad
    assert float(fixed.head.scale) == pytest.approx(1 / 0.07, rel=1e-6)


def test_decoder_output_is_half_resolution():
    dec = DPTDecoder([8, 16, 32, 64], [4, 8, 16, 32], features=8)
    feats = [torch.randn(1, c, 64 // r, 64 // r) for c, r in zip([8, 16, 32, 64], [4, 8, 16, 32])]
    assert dec(feats).shape == (1, 8, 32, 32)


def test_decoder_rejects_unsupported_strides():
    with pytest.raises(ValueError, match="strides"):
        DPTDecoder([8] * 4, [2, 4, 8, 16], features=8)


def test_text_encoder_cache_and_templates():
    te = RandomTextEncoder(dim=8, templates=("a photo of {}", "{}"))
    a = te.encode(["cat", "dog"])
    assert torch.allclose(a.norm(dim=1), torch.ones(2))
    assert {lab for _, lab in te._cache} == {"cat", "dog"}
    b = te.encode(["dog"])
    assert torch.equal(a[1], b[0])
    # averaging two templates differs from either template alone
    single = RandomTextEncoder(dim=8).encode(["cat"])
    assert not torch.allclose(a[0], single[0])


def test_changing_templates_never_returns_stale_embeddings():
    te = RandomTextEncoder(dim=8, templates=("{}",))
    before = te.encode(["cat"])
    te.templates = ("a photo of {}", "{}")
    after = te.encode(["cat"])
    fresh = RandomTextEncoder(dim=8, templates=("a photo of {}", "{}")).encode(["cat"])
    assert not torch.allclose(before, after) and torch.equal(after, fresh)


def test_template_order_is_normalise_average_normalise():
    te = RandomTextEncoder(dim=8, templates=("a photo of {}", "{} in the wild"))
    raw = te._embed(["a photo of cat", "cat in the wild"])  # the encoder's own per-prompt embeddings
    assert not torch.allclose(raw.norm(dim=1), torch.ones(2)), "raw Gaussian vectors are not unit length"
    expected = F.normalize(F.normalize(raw, dim=-1).mean(0), dim=-1)
    unnormalised_mean = F.normalize(raw.mean(0), dim=-1)
    got = te.encode(["cat"])[0]
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, unnormalised_mean, atol=1e-4)


def test_random_encoder_is_deterministic_per_label_not_per_position():
    a = RandomTextEncoder(dim=32, seed=3).encode(["x", "y"])
    b = RandomTextEncoder(dim=32, seed=3).encode(["y", "x"])
    assert torch.equal(a[0], b[1])
    assert not torch.equal(a, RandomTextEncoder(dim=32, seed=4).encode(["x", "y"]))


def test_template_without_placeholder_is_rejected():
    with pytest.raises(ValueError, match="placeholder"):
        RandomTextEncoder(dim=4, templates=("a photo",))


def test_one_hot_encoder_and_unknown_label():
    te = OneHotTextEncoder(["cat", "dog", "cow"])
    assert torch.equal(te.encode(["dog"]), torch.tensor([[0.0, 1.0, 0.0]]))
    with pytest.raises(KeyError, match="vocabulary"):
        te.encode(["horse"])


def test_minilm_text_encoder_has_real_semantics():
    te = SentenceTransformerTextEncoder("all-MiniLM-L6-v2")
    e = te.encode(["grass", "lawn", "aeroplane"])
    assert e.shape == (3, 384)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_model_config_defaults_are_cpu_friendly():
    cfg = ModelConfig()
    assert not cfg.backbone_pretrained


def test_open_clip_text_tower_with_random_weights_builds_through_open_clip():
    from lseg_nb.config import TextEncoderConfig
    from lseg_nb.models import create_text_encoder

    te = create_text_encoder(TextEncoderConfig(kind="open_clip", name="ViT-B-32", pretrained=None))
    e = te.encode(["a photo of grass", "sky"])
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    assert te.model.visual is None  # the image tower is dropped
    assert all(not p.requires_grad for p in te.parameters())


def test_text_encoder_embeds_large_label_template_sets_in_chunks():
    from lseg_nb.config import TextEncoderConfig
    from lseg_nb.models import create_text_encoder

    cfg = TextEncoderConfig(kind="open_clip", name="ViT-B-32", pretrained=None, templates=("a {}", "{} here"))
    te = create_text_encoder(cfg)
    labels = [f"label {i}" for i in range(5)]
    whole = te.encode(labels)  # 10 texts, one chunk
    te.clear_cache()
    seen: list[int] = []
    embed = te._embed
    te._embed = lambda texts: (seen.append(len(texts)), embed(texts))[1]
    te.chunk_size = 3
    chunked = te.encode(labels)
    assert seen == [3, 3, 3, 1]
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- local backbone weights (model.backbone_weights)


def _timm_state(name: str, seed: int) -> dict[str, torch.Tensor]:
    """A randomly initialised timm model's full state dict (classifier included), as a downloaded file holds."""
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


def _save(state: dict, path, wrap: str | None = None):
    from safetensors.torch import save_file

    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    return path


def _cnn(text_encoder, weights, **kw):
    return create_model(
        "lseg_small_cpu",
        text_encoder=text_encoder,
        backbone_weights=str(weights),
        backbone="resnet18",
        features=8,
        **kw,
    )


@pytest.mark.parametrize(
    ("suffix", "wrap"), [(".safetensors", None), (".pth", None), (".pth", "state_dict"), (".pt", "model")]
)
def test_backbone_weights_file_loads_into_the_cnn(tmp_path, text_encoder, capsys, suffix, wrap):
    state = _timm_state("resnet18", seed=1)
    if wrap == "model":  # a DistributedDataParallel training checkpoint
        state = {f"module.{k}": v for k, v in state.items()}
    path = _save(state, tmp_path / f"resnet18{suffix}", wrap)
    # backbone_pretrained=True too: the file replaces the download (HF_HUB_OFFLINE=1 in the tests)
    model = _cnn(text_encoder, path, pretrained=True)
    got = model.image_encoder.model.state_dict()
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    assert set(got) == set(plain) - {"fc.weight", "fc.bias"}
    for key in got:
        assert torch.equal(got[key], plain[key]), key
    report = model.image_encoder.weights_report
    assert set(report.unused) == {"fc.weight", "fc.bias"} and not report.missing
    line = capsys.readouterr().err.strip()
    assert line == report.line()
    assert line.startswith(
        f"backbone weights {path}: loaded {len(got)} tensors; 2 unused by this encoder (fc."
    )


def test_backbone_weights_file_loads_into_the_vit(tmp_path, text_encoder):
    state = _timm_state("vit_tiny_patch16_224", seed=2)
    path = _save(state, tmp_path / "vit.safetensors")
    model = create_model(
        "lseg_vitb16_384", text_encoder=text_encoder, backbone="vit_tiny_patch16_224", hooks=(0, 1, 2, 3),
        reassemble_channels=(8, 8, 16, 16), features=8, backbone_weights=str(path),
    )  # fmt: skip
    got = model.image_encoder.model.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in ("pos_embed", "cls_token", "blocks.3.mlp.fc2.weight"))
    # the blocks after the last hook, the final norm and the classifier are not part of the encoder
    after = tuple(f"blocks.{i}." for i in range(4, 12))
    report = model.image_encoder.weights_report
    assert set(report.unused) == {k for k in state if k.startswith(("norm.", "head.", *after))}
    assert not report.missing and report.loaded == len(got)


def test_backbone_weights_of_another_shape_are_refused_naming_the_key(tmp_path, text_encoder):
    state = _timm_state("resnet18", seed=1)
    state["layer2.0.conv1.weight"] = torch.zeros(256, 64, 3, 3)  # a wider network's layer
    path = _save(state, tmp_path / "wide.pth")
    with pytest.raises(
        InputError,
        match=r"wide\.pth: layer2\.0\.conv1\.weight has shape \(256, 64, 3, 3\) but resnet18 needs \(128, 64, 3, 3\)",
    ):
        _cnn(text_encoder, path)


def test_backbone_weights_missing_keys_are_reported_in_one_line(tmp_path, text_encoder, capsys):
    state = _timm_state("resnet18", seed=1)
    del state["layer4.1.bn2.weight"], state["layer4.1.bn2.bias"]
    _cnn(text_encoder, _save(state, tmp_path / "partial.safetensors"))
    line = capsys.readouterr().err.strip()
    assert line.startswith("warning: backbone weights ") and "\n" not in line
    assert line.endswith("2 missing, left at random init (layer4.1.bn2.weight, layer4.1.bn2.bias)")


def test_backbone_weights_bad_files_are_refused(tmp_path, text_encoder):
    with pytest.raises(FileNotFoundError, match="backbone weights file .*nope.pth does not exist"):
        _cnn(text_encoder, tmp_path / "nope.pth")
    with pytest.raises(InputError, match=r"none of its 1 tensors matches resnet18 \(the file has text\.proj"):
        _cnn(text_encoder, _save({"text.proj": torch.zeros(2)}, tmp_path / "other.pth"))
    torch.save({"weights": _Pickled()}, tmp_path / "code.pth")
    with pytest.raises(InputError, match="is not a plain PyTorch state dict"):
        _cnn(text_encoder, tmp_path / "code.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="could not be read as weights"):
        _cnn(text_encoder, tmp_path / "junk.safetensors")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "nostate.pth")
    with pytest.raises(InputError, match="holds no state dict of tensors"):
        _cnn(text_encoder, tmp_path / "nostate.pth")


class _Pickled:
    """An arbitrary object: a pickle of it needs code to load, which weights_only refuses."""


def test_backbone_weights_flag_parses():
    from lseg_nb.apps.cli_args import parse_args
    from lseg_nb.config import TrainConfig

    cfg = parse_args(TrainConfig, ["--model.backbone-weights", "/w/resnet18.pth"], "t")
    assert cfg.model.backbone_weights == "/w/resnet18.pth"


def test_torchvision_checkpoints_fit_timm_resnets_but_not_vits(tmp_path, text_encoder):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()  # what resnet18-f37072fd.pth holds
    model = _cnn(text_encoder, _save(state, tmp_path / "tv_resnet18.pth"))
    got = model.image_encoder.model.state_dict()
    assert torch.equal(got["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert set(model.image_encoder.weights_report.unused) == {"fc.weight", "fc.bias"}
    vit = _save(torchvision.models.vit_b_16().state_dict(), tmp_path / "tv_vit.pth")
    with pytest.raises(
        InputError, match=r"tv_vit\.pth: none of its \d+ tensors matches vit_tiny_patch16_224"
    ):
        create_model(
            "lseg_vitb16_384", text_encoder=text_encoder, backbone="vit_tiny_patch16_224", hooks=(0, 1, 2, 3),
            reassemble_channels=(8, 8, 16, 16), features=8, backbone_weights=str(vit),
        )  # fmt: skip


def test_backbone_weights_match_features_only_flattened_stage_names(tmp_path):
    """timm's features_only ConvNeXt names its stages ``stages_0`` where the checkpoint has ``stages.0``."""
    from safetensors.torch import save_file

    from lseg_nb.models.image_encoder import create_image_encoder

    state = _timm_state("convnext_atto", seed=4)
    save_file(state, str(tmp_path / "convnext_atto.safetensors"))
    cfg = ModelConfig(
        backbone="convnext_atto",
        out_indices=(0, 1, 2, 3),
        backbone_weights=str(tmp_path / "convnext_atto.safetensors"),
    )
    encoder = create_image_encoder(cfg)
    got = encoder.model.state_dict()
    assert torch.equal(got["stages_2.blocks.1.conv_dw.weight"], state["stages.2.blocks.1.conv_dw.weight"])
    assert encoder.weights_report.loaded == len(got) and not encoder.weights_report.missing
    assert set(encoder.weights_report.unused) == {k for k in state if k.startswith("head.")}
