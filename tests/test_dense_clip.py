"""Training-free dense-CLIP baselines (MaskCLIP, SCLIP, NACLIP, ClearCLIP) on tiny random-weight open_clip ViTs.

The last-block variants are checked against explicit recomputations from the block's state dict (plain matmuls,
per-head loops, NACLIP's own convolution construction of the neighbourhood term); the models then go through the
engine unchanged: evaluation, the PASCAL-5i protocol, nearest-text diagnostics, the label explorer and the CLI.
"""

from __future__ import annotations

import json
import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lseg_nb.apps.cli import main
from lseg_nb.apps.widgets import LabelExplorer
from lseg_nb.config import ConfigError, EvalConfig, from_dict, to_dict
from lseg_nb.data.benchmarks import pascal5i
from lseg_nb.diagnostics import neighbours
from lseg_nb.diagnostics.collect import collect_pixel_embeddings
from lseg_nb.engine.dense import EvalData
from lseg_nb.engine.episodic import run_episodes
from lseg_nb.engine.evaluate import evaluate
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.predictor import Predictor
from lseg_nb.engine.runs import load_model
from lseg_nb.models.dense_clip import (
    DenseCLIP,
    DenseCLIPConfig,
    create_dense_clip,
    parse_model_spec,
    resize_pos_embed,
)
from lseg_nb.models.dense_clip_attention import (
    clearclip_block,
    correlative_weights,
    gaussian_neighbourhood,
    sclip_block,
    self_self_weights,
)
from lseg_nb.utils.labels import LabelSplit
from tests.conftest import with_crop

TINY = "lseg-nb-test-tiny-ViT"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}
HEADS = 2
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)


@pytest.fixture(scope="module", autouse=True)
def tiny_clip_config(tmp_path_factory):
    """Register a 2-block, 32-wide ViT (patch 8, native 32 px) with open_clip under the name ``TINY``."""
    path = tmp_path_factory.mktemp("open_clip_cfg") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(path)
    return TINY


def _tiny(method: str = "maskclip", **overrides) -> DenseCLIP:
    """Random weights; every image-tower parameter is re-drawn so biases and LayerNorm affines are not trivial."""
    torch.manual_seed(0)
    cfg = DenseCLIPConfig(
        method=method, name=TINY, pretrained=None, templates=("a photo of a {}.",), **overrides
    )
    model = create_dense_clip(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.visual.named_parameters():
            base = (
                1.0
                if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight"))
                else 0.0
            )
            p.copy_(base + 0.3 * torch.randn(p.shape, generator=g))
    return model


def _ln(x, sd, prefix, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd[f"{prefix}.weight"] + sd[f"{prefix}.bias"]


def _mlp(x, sd):
    h = x @ sd["mlp.c_fc.weight"].T + sd["mlp.c_fc.bias"]
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU, the tiny config's activation
    return h @ sd["mlp.c_proj.weight"].T + sd["mlp.c_proj.bias"]


def _qkv(x, sd):
    c = x.shape[-1]
    w, b = sd["attn.in_proj_weight"], sd["attn.in_proj_bias"]
    y = _ln(x, sd, "ln_1")
    return [y @ w[i * c : (i + 1) * c].T + b[i * c : (i + 1) * c] for i in range(3)]


def _per_head(weights_fn, q, k, v, sd):
    """Explicit per-head loop: out = concat_h(A_h v_h) W_o^T + b_o with A_h = weights_fn(q_h, k_h, d)."""
    d = q.shape[-1] // HEADS
    outs = []
    for h in range(HEADS):
        sl = slice(h * d, (h + 1) * d)
        outs.append(weights_fn(q[..., sl], k[..., sl], d) @ v[..., sl])
    return torch.cat(outs, -1) @ sd["attn.out_proj.weight"].T + sd["attn.out_proj.bias"]


def _ref_last_block(method, x, sd, grid, std=5.0):
    q, k, v = _qkv(x, sd)
    if method == "maskclip":
        v = x + v @ sd["attn.out_proj.weight"].T + sd["attn.out_proj.bias"]
        return v + _mlp(_ln(v, sd, "ln_2"), sd)
    if method == "sclip":

        def csa(qh, kh, d):
            return (qh @ qh.transpose(-1, -2) / math.sqrt(d)).softmax(-1) + (
                kh @ kh.transpose(-1, -2) / math.sqrt(d)
            ).softmax(-1)

        y = x + _per_head(csa, q, k, v, sd)
        return y + _mlp(_ln(y, sd, "ln_2"), sd)
    if method == "clearclip":  # q-q attention only: no residual, no FFN

        def qq(qh, kh, d):
            return (qh @ qh.transpose(-1, -2) / math.sqrt(d)).softmax(-1)

        return _per_head(qq, q, k, v, sd)
    h, w = grid
    omega = torch.zeros(1 + h * w, 1 + h * w)
    for i in range(h * w):
        for j in range(h * w):
            dist2 = (i // w - j // w) ** 2 + (i % w - j % w) ** 2
            omega[1 + i, 1 + j] = math.exp(-dist2 / (2 * std**2))

    def nb(qh, kh, d):
        return (kh @ kh.transpose(-1, -2) / math.sqrt(d) + omega).softmax(-1)

    return _per_head(nb, q, k, v, sd)


@pytest.mark.parametrize("method", ["maskclip", "sclip", "naclip", "clearclip"])
def test_last_block_equals_explicit_recomputation(method):
    model = _tiny(method)
    images = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    x, grid = model.tokens_before_last_block(images)
    assert grid == (6, 8) and x.shape == (2, 1 + 48, 32)
    sd = {k: v.detach() for k, v in model.visual.transformer.resblocks[-1].state_dict().items()}
    post = model.visual.state_dict()
    tokens = _ref_last_block(method, x, sd, grid)[:, 1:]
    emb = _ln(tokens, post, "ln_post") @ post["proj"]
    expected = F.normalize(emb, dim=-1).transpose(1, 2).reshape(2, 16, 6, 8)
    got = model.encode_image(images)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_methods_differ_and_tokens_match_open_clip():
    """Up to the last block the tokens are open_clip's own: the unmodified last block reproduces CLIP's output."""
    model = _tiny("maskclip")
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    x, _ = model.tokens_before_last_block(images)
    v = model.visual
    pooled = v.ln_post(v.transformer.resblocks[-1](x)[:, 0]) @ v.proj
    assert torch.allclose(pooled, v(images), atol=1e-5)
    embs = [_tiny(m).encode_image(images) for m in ("maskclip", "sclip", "naclip", "clearclip")]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(embs[a], embs[b], atol=1e-3), (a, b)


def test_correlative_attention_on_a_toy_input():
    q = torch.tensor([[[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]]])
    k = torch.tensor([[[[0.5, 0.5], [1.0, -1.0], [0.0, 0.0]]]])
    s = 0.5**0.5
    expected = torch.softmax(q[0, 0] @ q[0, 0].T * s, -1) + torch.softmax(k[0, 0] @ k[0, 0].T * s, -1)
    w = correlative_weights(q, k, s)
    assert torch.allclose(w[0, 0], expected) and torch.allclose(w.sum(-1), torch.full((1, 1, 3), 2.0))
    # first row of softmax(q q^T s): logits [1, 0, 1] * s
    row = torch.softmax(torch.tensor([1.0, 0.0, 1.0]) * s, 0)
    assert torch.allclose(torch.softmax(q[0, 0] @ q[0, 0].T * s, -1)[0], row)


def test_self_self_attention_on_a_toy_input():
    """ClearCLIP: softmax(q q^T s) per row; the first row of q = [[1, 0], [0, 2], [1, 1]] has logits [1, 0, 1] s."""
    q = torch.tensor([[[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]]])
    s = 0.5**0.5
    w = self_self_weights(q, s)
    e = math.exp(s)
    assert w[0, 0, 0].tolist() == pytest.approx([e / (2 * e + 1), 1 / (2 * e + 1), e / (2 * e + 1)])
    assert torch.allclose(w.sum(-1), torch.ones(1, 1, 3))


def test_clearclip_block_drops_residual_and_ffn():
    """Zeroing the FFN changes SCLIP's block (FFN kept) but not ClearCLIP's (FFN removed); ClearCLIP's output does
    not contain the input as a residual: scaling the out-projection scales the output exactly."""
    model = _tiny("clearclip")
    block = model.visual.transformer.resblocks[-1]
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(7))
    before = clearclip_block(block, x)
    sclip_before = sclip_block(block, x)
    with torch.no_grad():
        block.mlp.c_proj.weight.zero_()
        block.mlp.c_proj.bias.zero_()
    assert torch.equal(clearclip_block(block, x), before)
    assert not torch.allclose(sclip_block(block, x), sclip_before, atol=1e-3)
    with torch.no_grad():
        block.attn.out_proj.weight.mul_(2)
        block.attn.out_proj.bias.mul_(2)
    assert torch.allclose(clearclip_block(block, x), 2 * before, atol=1e-5)


def test_gaussian_neighbourhood_matches_naclip_convolution():
    """NACLIP builds omega by convolving one-hot maps with a (2h-1)x(2w-1) Gaussian window (padding 'same')."""
    h, w, std = 3, 5, 1.5
    ys, xs = torch.meshgrid(
        torch.arange(2 * h - 1) - (h - 1.0), torch.arange(2 * w - 1) - (w - 1.0), indexing="ij"
    )
    window = torch.exp(-(ys**2 + xs**2) / (2 * std**2))
    onehot = torch.eye(h * w).reshape(h * w, 1, h, w)
    conv = F.conv2d(onehot, window[None, None], padding="same").reshape(h * w, h * w)
    omega = gaussian_neighbourhood(h, w, std)
    assert omega.shape == (16, 16)
    assert torch.allclose(omega[1:, 1:], conv, atol=1e-6)
    assert omega[0].abs().sum() == 0 and omega[:, 0].abs().sum() == 0
    assert omega[1 + 0, 1 + 1] == pytest.approx(math.exp(-1 / (2 * std**2)))  # horizontal neighbour
    assert omega[1 + 0, 1 + w] == pytest.approx(math.exp(-1 / (2 * std**2)))  # vertical neighbour


def test_gaussian_neighbourhood_is_exact():
    """exp(-d^2 / 2 std^2) from integer coordinate differences, bit for bit (cdist's sqrt-then-square was off by
    up to 6e-8, and cdist has no ONNX lowering: tests/test_export.py exports NACLIP)."""
    h, w, std = 7, 9, 5.0
    n = h * w
    d2 = torch.tensor(
        [[float((i // w - j // w) ** 2 + (i % w - j % w) ** 2) for j in range(n)] for i in range(n)]
    )
    assert torch.equal(gaussian_neighbourhood(h, w, std)[1:, 1:], torch.exp(-d2 / (2 * std**2)))


def test_sclip_block_keeps_residual_and_ffn_on_a_toy_input():
    block = _tiny("sclip").visual.transformer.resblocks[-1]
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(6))
    sd = {k: v.detach() for k, v in block.state_dict().items()}
    ref = _ref_last_block("sclip", x, sd, (2, 2))
    assert torch.allclose(sclip_block(block, x), ref, atol=1e-5)


def test_shapes_unit_norms_and_resolved_config():
    model = _tiny("naclip")
    assert model.text_dim == 16 and model.size_multiple == 8
    assert model.config.crop_size == 32 and model.config.mean == pytest.approx(OPENAI_MEAN)
    assert model.config.logit_scale == pytest.approx(
        1 / 0.07
    )  # CLIP's initial learned scale (random weights)
    images = torch.randn(2, 3, 48, 64)
    emb = model.encode_image(images)
    assert emb.shape == (2, 16, 6, 8) and torch.allclose(emb.norm(dim=1), torch.ones(2, 6, 8), atol=1e-5)
    text = model.encode_text(["grass", "sky", "cow"])
    assert text.shape == (3, 16) and torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    assert model(images, text).shape == (2, 3, 48, 64)
    assert all(not p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        model.encode_image(torch.randn(1, 3, 50, 64))
    with pytest.raises(ValueError, match=r"\(K, 16\)"):
        model(images, torch.randn(3, 7))


def test_default_templates_are_openais_80():
    torch.manual_seed(0)
    model = create_dense_clip(DenseCLIPConfig(name=TINY, pretrained=None))
    assert len(model.config.templates) == 80 and "a photo of a {}." in model.config.templates
    assert model.text_encoder.templates == model.config.templates


def test_logits_are_scaled_cosines_upsampled():
    model = _tiny("maskclip")
    g = torch.Generator().manual_seed(4)
    emb = F.normalize(torch.randn(2, 16, 3, 4, generator=g), dim=1)
    text = torch.randn(5, 16, generator=g) * 3  # not unit: logits normalise it
    native = model.logits_from_embeddings(emb, text, (3, 4))
    for b, k, i, j in [(0, 0, 0, 0), (1, 4, 2, 3), (0, 2, 1, 2)]:
        cos = float(emb[b, :, i, j] @ text[k]) / float(text[k].norm())
        assert native[b, k, i, j].item() == pytest.approx(model.config.logit_scale * cos, rel=1e-5)
    up = model.logits_from_embeddings(emb, text, (6, 8))
    assert torch.allclose(up, F.interpolate(native, size=(6, 8), mode="bilinear", align_corners=False))
    per_image = model.logits_from_embeddings(emb, text.expand(2, 5, 16), (6, 8))
    assert torch.allclose(per_image, up, atol=1e-6)
    images = torch.randn(1, 3, 32, 48, generator=g)
    full = model(images, text)
    assert torch.allclose(full, model.logits_from_embeddings(model.encode_image(images), text, (32, 48)))


def test_position_embeddings_resized_bicubically():
    pos = torch.randn(1 + 16, 8)
    assert resize_pos_embed(pos, (4, 4), (4, 4)) is pos
    out = resize_pos_embed(pos, (4, 4), (3, 6))
    grid = pos[1:].reshape(4, 4, 8).permute(2, 0, 1)[None]
    expected = F.interpolate(grid, size=(3, 6), mode="bicubic", align_corners=False)[0].permute(1, 2, 0)
    assert out.shape == (19, 8) and torch.equal(out[0], pos[0])
    assert torch.allclose(out[1:], expected.reshape(18, 8))


def test_spec_parsing_and_config_round_trip(tmp_path):
    cfg = parse_model_spec("maskclip:ViT-B-16/openai")
    assert (cfg.method, cfg.name, cfg.pretrained) == ("maskclip", "ViT-B-16", "openai")
    assert parse_model_spec("naclip:ViT-B-16//data/clip.bin").pretrained == "/data/clip.bin"
    assert parse_model_spec("sclip:ViT-B-16/none").pretrained is None
    assert parse_model_spec("clearclip:ViT-B-16/openai").method == "clearclip"
    assert parse_model_spec("sclip:ViT-B-16/").pretrained is None
    assert parse_model_spec("naclip:ViT-B-16/openai", gaussian_std=3.0).gaussian_std == 3.0
    assert cfg.spec == "maskclip:ViT-B-16/openai" and parse_model_spec("naclip:x/").spec == "naclip:x/none"
    for bad in (
        "clip:ViT-B-16/openai",
        "maskclip:ViT-B-16",
        "maskclip/ViT-B-16",
        "maskclip:/openai",
        "runs/x",
    ):
        with pytest.raises(ValueError, match=r"model spec .* 'METHOD:MODEL/PRETRAINED'"):
            parse_model_spec(bad)
    resolved = _tiny("naclip").config
    for c in (cfg, resolved):
        assert from_dict(DenseCLIPConfig, json.loads(json.dumps(to_dict(c)))) == c
    with pytest.raises(ConfigError, match=r"DenseCLIPConfig\.method"):
        from_dict(DenseCLIPConfig, {"method": "clipseg"})
    with pytest.raises(ValueError, match="gaussian_std"):
        DenseCLIPConfig(gaussian_std=0)


def test_unknown_names_and_offline_tags_are_explained(monkeypatch, tmp_path):
    import huggingface_hub.constants

    with pytest.raises(ValueError, match="open_clip has no model 'ViT-Q-99'"):
        create_dense_clip("maskclip:ViT-Q-99/openai")
    with pytest.raises(ValueError, match="neither an open_clip tag"):
        create_dense_clip("maskclip:ViT-B-16/no-such-tag")
    with pytest.raises(ValueError, match="has no plain ViT image tower"):
        create_dense_clip("maskclip:RN50/none")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="could not load open_clip weights 'ViT-B-16'") as info:
        create_dense_clip("sclip:ViT-B-16/openai")
    # OpenAI weights are QuickGELU: the local-file advice names the -quickgelu architecture.
    assert "'sclip:ViT-B-16-quickgelu//path/to/open_clip_pytorch_model.bin'" in str(info.value)
    assert info.value.__cause__ is None


# --- engine integration -------------------------------------------------------------------------------------
# These go through lseg_nb.engine.inference, which (on this branch) still reads LSeg internals
# (`model.head.proj.out_channels`, `model.image_encoder.reductions`); DenseCLIP answers them through thin
# compatibility properties until the engine uses `model.text_dim` / `model.size_multiple`.


def _dataset(model, n=3, size=(40, 56)):
    g = torch.Generator().manual_seed(5)
    items = []
    for _ in range(n):
        image = torch.rand(3, *size, generator=g)
        mean, std = (
            torch.tensor(model.config.mean)[:, None, None],
            torch.tensor(model.config.std)[:, None, None],
        )
        label = torch.randint(0, 3, size, generator=g)
        label[:, :5] = 255
        items.append(((image - mean) / std, label))
    return items


def test_evaluate_matches_an_independent_confusion_matrix():
    model = _tiny("sclip")
    data, names = _dataset(model), ["grass", "sky", "cow"]
    result = evaluate(
        model, EvalData(data, LabelSplit.from_labels(names, [2])), EvalConfig(bootstrap=0), progress=False
    )
    text = model.encode_text(names)
    cm = np.zeros((3, 3), dtype=np.int64)
    with torch.no_grad():
        for image, label in data:  # 40x56 is a multiple of the patch: no padding involved
            pred = model(image[None], text).argmax(1)[0].numpy()
            valid = label.numpy() != 255
            np.add.at(cm, (label.numpy()[valid], pred[valid]), 1)
    np.testing.assert_array_equal(result.confusion, cm)
    assert result.unseen_only is not None and result.num_images == 3
    data_all = EvalData(data, LabelSplit.from_labels(names))
    sliding = evaluate(
        with_crop(model, 32), data_all, EvalConfig(mode="sliding", bootstrap=0), progress=False
    )
    assert sliding.confusion.sum() == cm.sum()


def _fake_voc(root):
    base = root / "VOC2012"
    (base / "JPEGImages").mkdir(parents=True)
    (base / "SegmentationClassAug").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(base / "JPEGImages" / "img_a.jpg")
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 4:25], mask[18:28, 20:38], mask[4, 3:26] = 1, 2, 255
    Image.fromarray(mask).save(base / "SegmentationClassAug" / "img_a.png")
    (root / "splits").mkdir()
    (root / "splits" / "fold0.txt").write_text("img_a__01\nimg_a__02\n")
    (root / "labels.txt").write_text("\n".join(f"class{i}" for i in range(1, 21)) + "\n")
    return base


def test_pascal5i_protocol_scores_a_dense_clip_model(tmp_path):
    model = _tiny("naclip")
    base = _fake_voc(tmp_path)
    source = pascal5i.episode_source(tmp_path, 0, tmp_path / "splits", tmp_path / "labels.txt")
    result = run_episodes(model, source, EvalConfig(protocol="episodic", episode_size=64), progress=False)
    rgb = Image.open(base / "JPEGImages" / "img_a.jpg").convert("RGB").resize((64, 64), Image.BILINEAR)
    x = (np.asarray(rgb, np.float32) / 255 - np.array(model.config.mean)) / np.array(model.config.std)
    x = torch.from_numpy(x.transpose(2, 0, 1)).float()[None]
    mask = np.array(Image.open(base / "SegmentationClassAug" / "img_a.png"))
    mask = mask[np.floor(np.arange(64) * 30 / 64).astype(int)][
        :, np.floor(np.arange(64) * 40 / 64).astype(int)
    ]
    valid = mask != 255
    # the official loader serves 1000 episodes, cycling the 2-line list: each episode 500 times
    for cls in (1, 2):
        with torch.no_grad():
            pred = model(x, model.encode_text(["others", f"class{cls}"])).argmax(1)[0].numpy()
        p, g = (pred == 1) & valid, (mask == cls) & valid
        assert result.intersection[1][cls - 1] == 500 * (p & g).sum()
        assert result.union[1][cls - 1] == 500 * (p | g).sum()
    assert result.num_episodes == 1000 and result.distinct_episodes == 2 and 0 <= result.miou <= 100


def test_neighbour_analysis_of_dense_clip_pixels():
    model = _tiny("maskclip")
    data, names = _dataset(model), ["grass", "sky", "cow"]
    emb, lab = collect_pixel_embeddings(model, data, per_class=500, max_total=1500)
    assert emb.shape[1] == 16 and torch.allclose(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-4)
    text = model.encode_text(names)
    report = neighbours.neighbour_analysis(emb, lab, text, names, seen=[0, 1], unseen=[2])
    nearest = (emb @ text.T).argmax(1)
    for row in report.classes:
        own = lab == row.index
        assert row.n_pixels == int(own.sum())
        assert row.top1 == pytest.approx(float((nearest[own] == row.index).float().mean()))


def test_label_explorer_accepts_a_dense_clip_model():
    from matplotlib.figure import Figure

    model = _tiny("sclip")
    data = _dataset(model, n=2)
    explorer = LabelExplorer(model, data)
    q = explorer.query(1, "red, stripes, grass")
    ref = predict_logits(model, data[1][0][None], model.encode_text(q.labels))[0].argmax(0)
    np.testing.assert_array_equal(q.mask, ref.numpy())
    assert q.mask.shape == (40, 56) and q.shares.sum() == pytest.approx(1.0)
    assert isinstance(explorer.figure(0, "red, green"), Figure)
    assert explorer.display_image(0).dtype == np.uint8


def test_similarity_maps_use_the_models_own_resize_rule():
    """Dense-CLIP logits are upsampled with align_corners=False; the similarity maps used align_corners=True and
    were shifted against the predictions. Now both come from the model's rule: no head, so logits = scale x sim."""
    model = _tiny("maskclip")
    image = _dataset(model, n=1, size=(40, 56))[0][0]
    p = Predictor(model)
    p.set_image(image)
    sim, logits = p.similarity(["grass", "sky"]), p.predict(["grass", "sky"])
    torch.testing.assert_close(sim * model.logit_scale, logits, rtol=1e-4, atol=1e-4)


def test_load_model_and_cli(tmp_path, capsys):
    model = load_model(f"naclip:{TINY}/none")
    assert (
        isinstance(model, DenseCLIP) and model.config.method == "naclip" and model.config.pretrained is None
    )
    with pytest.raises(FileNotFoundError, match="no model weights"):
        load_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="model spec 'clip:ViT-B-16/openai'"):
        load_model("clip:ViT-B-16/openai")
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "pred.png"
    args = ["predict", "--weights", f"maskclip:{TINY}/none", "--image", str(image), "--labels", "red", "blue"]
    assert main([*args, "--out", str(out)]) == 0 and out.stat().st_size > 0
    assert main(["evaluate", "--model", f"maskclip:{TINY}/none"]) == 2
    assert "add --data.dataset" in capsys.readouterr().err
    assert main(["evaluate"]) == 2 and "exactly one of --run" in capsys.readouterr().err
    metrics = tmp_path / "eval.json"
    spec = [
        "evaluate",
        "--model",
        f"sclip:{TINY}/none",
        "--data.dataset",
        "synthetic_textures",
        "--data.fold",
        "0",
    ]
    assert main([*spec, "--data.max-images", "2", "--out", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    assert result["num_images"] == 2 and "unseen_only" in result["settings"]
