"""Official LSeg checkpoints: name mapping, exact round trips, the official forward formula, safe loading."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.checkpoints import (
    LAYOUT_CONFIGS,
    UNUSED,
    build_from_official,
    convert_official,
    detect_layout,
    load_into,
    load_lseg_nb,
    load_official,
    lseg_nb_to_official,
    official_config,
    official_to_lseg_nb,
    read_checkpoint,
    save_lseg_nb,
    split_checkpoint,
)
from lseg_nb.models import OpenCLIPTextEncoder, RandomTextEncoder, create_model
from lseg_nb.models.lseg import get_config

REFERENCE = (
    Path(os.environ.get("LSEG_NB_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "reference"
)
MANIFESTS = [
    "official_lseg_demo_clip_vitl16_384",
    "official_lseg_zs_clip_vitl16_384",
    "official_lseg_zs_clip_resnet101",
]


# ---- an independent, functional re-implementation of the official forward, reading official names ----


def _bn(sd, p, x):
    return F.batch_norm(
        x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], eps=1e-5
    )


def _rcu(sd, p, x):  # ResidualConvUnit_custom with bn=True, activation ReLU
    out = _bn(sd, p + "bn1.", F.conv2d(F.relu(x), sd[p + "conv1.weight"], padding=1))
    out = _bn(sd, p + "bn2.", F.conv2d(F.relu(out), sd[p + "conv2.weight"], padding=1))
    return out + x


def _refine(sd, n, x, skip=None):  # FeatureFusionBlock_custom
    p = f"net.scratch.refinenet{n}."
    if skip is not None:
        x = x + _rcu(sd, p + "resConfUnit1.", skip)
    x = F.interpolate(_rcu(sd, p + "resConfUnit2.", x), scale_factor=2, mode="bilinear", align_corners=True)
    return F.conv2d(x, sd[p + "out_conv.weight"], sd[p + "out_conv.bias"])


def _vit_block(sd, p, t, heads):
    b, n, d = t.shape
    y = F.layer_norm(t, (d,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
    qkv = F.linear(y, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).reshape(b, n, 3, heads, d // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1)
    t = t + F.linear(
        (attn @ v).transpose(1, 2).reshape(b, n, d), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"]
    )
    y = F.layer_norm(t, (d,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
    y = F.linear(
        F.gelu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])), sd[p + "mlp.fc2.weight"]
    )
    return t + y + sd[p + "mlp.fc2.bias"]


def _vit_layers(sd, x, hooks, heads, patch=16):
    m, b = "net.pretrained.model.", x.shape[0]
    gh, gw = x.shape[2] // patch, x.shape[3] // patch
    t = F.conv2d(x, sd[m + "patch_embed.proj.weight"], sd[m + "patch_embed.proj.bias"], stride=patch)
    t = t.flatten(2).transpose(1, 2)
    pos = sd[m + "pos_embed"]
    old = int(math.sqrt(pos.shape[1] - 1))
    grid = pos[0, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bilinear").permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
    t = torch.cat([sd[m + "cls_token"].expand(b, -1, -1), t], 1) + torch.cat([pos[:, :1], grid], 1)
    acts = []
    for i in range(max(hooks) + 1):
        t = _vit_block(sd, f"{m}blocks.{i}.", t, heads)
        if i in hooks:
            acts.append(t)
    out = []
    for n, a in enumerate(acts, 1):
        p = f"net.pretrained.act_postprocess{n}."
        r = torch.cat([a[:, 1:], a[:, :1].expand_as(a[:, 1:])], -1)
        r = F.gelu(F.linear(r, sd[p + "0.project.0.weight"], sd[p + "0.project.0.bias"]))
        r = F.conv2d(r.transpose(1, 2).reshape(b, -1, gh, gw), sd[p + "3.weight"], sd[p + "3.bias"])
        if n in (1, 2):
            r = F.conv_transpose2d(r, sd[p + "4.weight"], sd[p + "4.bias"], stride=4 if n == 1 else 2)
        elif n == 4:
            r = F.conv2d(r, sd[p + "4.weight"], sd[p + "4.bias"], stride=2, padding=1)
        out.append(r)
    return out


def _res_block(sd, p, x, stride):  # torchvision BasicBlock / Bottleneck (stride on the first 3x3 conv)
    out, n_conv, strided = x, sum(f"{p}conv{j}.weight" in sd for j in (1, 2, 3)), False
    for j in range(1, n_conv + 1):
        w = sd[f"{p}conv{j}.weight"]
        s = stride if w.shape[-1] == 3 and not strided else 1
        strided |= w.shape[-1] == 3
        out = _bn(sd, f"{p}bn{j}.", F.conv2d(out, w, stride=s, padding=w.shape[-1] // 2))
        out = F.relu(out) if j < n_conv else out
    if f"{p}downsample.0.weight" in sd:
        x = _bn(sd, f"{p}downsample.1.", F.conv2d(x, sd[f"{p}downsample.0.weight"], stride=stride))
    return F.relu(out + x)


def _resnet_layers(sd, x):
    p = "net.pretrained."
    x = F.relu(_bn(sd, p + "layer1.1.", F.conv2d(x, sd[p + "layer1.0.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    outs = []
    for n, prefix in enumerate([p + "layer1.4.", p + "layer2.", p + "layer3.", p + "layer4."]):
        blocks = sorted({int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)})
        for i in blocks:
            x = _res_block(sd, f"{prefix}{i}.", x, stride=2 if n > 0 and i == 0 else 1)
        outs.append(x)
    return outs


def official_forward(sd, x, text, layers):
    """``LSeg.forward`` of the official code, written against the official tensor names."""
    rn = [F.conv2d(f, sd[f"net.scratch.layer{i + 1}_rn.weight"], padding=1) for i, f in enumerate(layers)]
    path = _refine(sd, 4, rn[3])
    for n in (3, 2, 1):
        path = _refine(sd, n, path, rn[n - 1])
    img = F.conv2d(path, sd["net.scratch.head1.weight"], sd["net.scratch.head1.bias"])
    b, c, h, w = img.shape
    feats = img.permute(0, 2, 3, 1).reshape(-1, c)
    feats = feats / feats.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    logit_scale = torch.ones([]).mul(np.log(1 / 0.07)).exp()
    out = (logit_scale * feats @ text.t()).view(b, h, w, -1).permute(0, 3, 1, 2)
    return F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                r = (
                    torch.rand(v.shape, generator=g) + 0.5
                    if k.endswith("running_var")
                    else torch.randn(v.shape, generator=g)
                )
                v.copy_(r if k.endswith("running_var") else r * 0.1)
    return model.eval()


def test_tiny_vit_computes_the_official_formula(tiny_vit, text_encoder):
    model = _randomise(tiny_vit)
    official = lseg_nb_to_official(model.state_dict(), "vitb16_384")
    x, text = torch.randn(2, 3, 96, 64), text_encoder.encode(["cat", "dog", "others"])
    with torch.no_grad():
        ours = model(x, text)
        ref = official_forward(official, x, text, _vit_layers(official, x, hooks=(0, 1, 2, 3), heads=3))
    assert ours.shape == (2, 3, 96, 64)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_tiny_resnet_computes_the_official_formula(tiny_model, text_encoder):
    model = _randomise(tiny_model)
    official = lseg_nb_to_official(model.state_dict(), "rn101")
    x, text = torch.randn(2, 3, 64, 64), text_encoder.encode(["road", "sky"])
    with torch.no_grad():
        ours = model(x, text)
        ref = official_forward(official, x, text, _resnet_layers(official, x))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_name_mapping_examples():
    t = torch.zeros(1)
    vit = {
        "net.pretrained.model.blocks.3.attn.qkv.weight": "image_encoder.model.blocks.3.attn.qkv.weight",
        "net.pretrained.act_postprocess1.0.project.0.bias": "image_encoder.readout.0.project.0.bias",
        "net.pretrained.act_postprocess2.3.weight": "decoder.reassemble.1.proj.weight",
        "net.pretrained.act_postprocess4.4.bias": "decoder.reassemble.3.resample.bias",
        "net.scratch.layer3_rn.weight": "decoder.layer_rn.2.weight",
        "net.scratch.refinenet1.resConfUnit1.bn2.running_var": "decoder.fusion.0.skip_unit.bn2.running_var",
        "net.scratch.refinenet4.resConfUnit2.conv1.weight": "decoder.fusion.3.unit.conv1.weight",
        "net.scratch.refinenet2.out_conv.bias": "decoder.fusion.1.out_conv.bias",
        "net.scratch.head1.weight": "head.proj.weight",
        "net.scratch.head_block.depthwise.depthwise.weight": "head.block.depthwise.conv.weight",
        "net.clip_pretrained.transformer.resblocks.0.ln_1.weight": "text_encoder.model.transformer.resblocks.0.ln_1.weight",
    }
    rn = {
        "net.pretrained.layer1.0.weight": "image_encoder.model.conv1.weight",
        "net.pretrained.layer1.1.running_mean": "image_encoder.model.bn1.running_mean",
        "net.pretrained.layer1.4.2.conv3.weight": "image_encoder.model.layer1.2.conv3.weight",
        "net.pretrained.layer3.22.bn2.bias": "image_encoder.model.layer3.22.bn2.bias",
        "net.pretrained.layer4.0.downsample.1.weight": "image_encoder.model.layer4.0.downsample.1.weight",
    }
    for layout, table in (("vitl16_384", vit), ("rn101", rn)):
        unused = {"net.scratch.refinenet4.resConfUnit1.conv1.weight": t, "net.clip_pretrained.visual.proj": t}
        converted, report = official_to_lseg_nb({k: t for k in table} | unused, layout=layout)
        assert converted == {v: t for v in table.values()}
        assert set(report.dropped) == set(unused) and report.mapped == len(table)
        assert set(lseg_nb_to_official(converted, layout, unused={})) == set(table)


def test_round_trips_are_exact(tiny_vit):
    ours = _randomise(tiny_vit).state_dict()
    official = lseg_nb_to_official(ours, "vitb16_384")
    assert (
        official["net.pretrained.model.norm.weight"].eq(1).all()
        and official["net.pretrained.model.head.weight"].eq(0).all()
    )
    assert official["net.scratch.refinenet4.resConfUnit1.bn1.running_var"].eq(1).all()
    back, report = official_to_lseg_nb(official, layout="vitb16_384", keep_unused=True)
    assert set(back) == set(ours) and all(torch.equal(back[k], ours[k]) for k in ours)
    again = lseg_nb_to_official(back, "vitb16_384", unused=report.unused)
    assert set(again) == set(official) and all(torch.equal(again[k], official[k]) for k in official)


def test_unknown_names_fail_loudly(tiny_model):
    official = lseg_nb_to_official(tiny_model.state_dict(), "rn101")
    with pytest.raises(ValueError, match=r"no lseg_nb counterpart: scratch\.extra\.weight"):
        official_to_lseg_nb(official | {"net.scratch.extra.weight": torch.zeros(1)}, layout="rn101")
    with pytest.raises(ValueError, match=r"no lseg_nb counterpart: optimizer_state"):
        official_to_lseg_nb(official | {"optimizer_state": torch.zeros(1)}, layout="rn101")
    with pytest.raises(ValueError, match="no official counterpart: decoder.bogus"):
        lseg_nb_to_official(tiny_model.state_dict() | {"decoder.bogus": torch.zeros(1)}, "rn101")
    with pytest.raises(ValueError, match="not tensors: net.x"):
        official_to_lseg_nb(official | {"net.x": 3}, layout="rn101")


def test_foreign_state_dicts_are_rejected():
    import torchvision

    with pytest.raises(ValueError, match="plain torchvision/timm ResNet"):
        detect_layout(torchvision.models.resnet18().state_dict())
    with pytest.raises(ValueError, match="not an official LSeg checkpoint"):
        detect_layout({"model.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="non-empty state_dict"):
        detect_layout({})


def test_strict_load_reports_missing_and_mismatched(tiny_model):
    sd = tiny_model.state_dict()
    bad = {k: v for k, v in sd.items() if k != "head.proj.bias"} | {
        "decoder.layer_rn.0.weight": torch.zeros(1)
    }
    with pytest.raises(
        ValueError, match=r"missing: head\.proj\.bias; shape mismatch: decoder\.layer_rn\.0\.weight"
    ):
        load_into(tiny_model, bad, "test")


def test_lseg_nb_safetensors_round_trip(tiny_model, text_encoder, tmp_path, images):
    model = _randomise(tiny_model)
    path = tmp_path / "m.safetensors"
    save_lseg_nb(model, path, {"note": "x"})
    loaded = load_lseg_nb(path, text_encoder=RandomTextEncoder(dim=16, seed=0))
    assert loaded.config == model.config and not loaded.training
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert set(sd) == set(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)
    text = text_encoder.encode(["a", "b"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, text), model(images, text), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError):
        load_lseg_nb(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="no lseg_nb metadata"):
        load_lseg_nb(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_lseg_nb(tmp_path / "junk.safetensors")


def _fake_lightning_module(monkeypatch):
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.utilities"]
    mods = {n: types.ModuleType(n) for n in names}
    model_checkpoint = type("ModelCheckpoint", (), {"__module__": "pytorch_lightning.callbacks"})
    attribute_dict = type("AttributeDict", (dict,), {"__module__": "pytorch_lightning.utilities"})
    mods["pytorch_lightning.callbacks"].ModelCheckpoint = model_checkpoint
    mods["pytorch_lightning.utilities"].AttributeDict = attribute_dict
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return model_checkpoint, attribute_dict, names


def test_lightning_checkpoint_reads_without_running_code(monkeypatch, tmp_path):
    model_checkpoint, attribute_dict, names = _fake_lightning_module(monkeypatch)
    ckpt = {
        "epoch": 3,
        "state_dict": {"net.scratch.head1.weight": torch.ones(2)},
        "callbacks": {model_checkpoint: {"best_model_score": torch.tensor(0.5)}},
        "hyper_parameters": attribute_dict(arch_option=2, block_depth=0, activation="lrelu"),
    }
    torch.save(ckpt, tmp_path / "lightning.ckpt")
    for n in names:  # loading must not need (or import) Lightning
        monkeypatch.delitem(sys.modules, n)
    obj = read_checkpoint(tmp_path / "lightning.ckpt")
    sd, hp = split_checkpoint(obj)
    assert torch.equal(sd["net.scratch.head1.weight"], torch.ones(2))
    assert hp == {"arch_option": 2, "block_depth": 0, "activation": "lrelu"} and type(hp) is dict


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_files_needing_code_or_corrupt_are_refused(tmp_path):
    torch.save({"state_dict": {}, "x": _Evil(str(tmp_path / "pwned"))}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match=r"weights_only=True \(posix\.mkdir\).*re-save only its tensors"):
        read_checkpoint(tmp_path / "evil.ckpt")
    assert not (tmp_path / "pwned").exists()
    torch.save({"state_dict": {"net.a": torch.ones(1000)}}, tmp_path / "good.ckpt")
    data = (tmp_path / "good.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.ckpt").write_bytes(bytes(range(256)) * 20)
    for name in ("truncated.ckpt", "garbage.ckpt"):
        with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
            read_checkpoint(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.ckpt")
    torch.save({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match=r"resnet\.pth: not an official LSeg checkpoint"):
        load_official(tmp_path / "resnet.pth")


def _empty_hf_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))


def test_offline_timm_message(monkeypatch, tmp_path):
    _empty_hf_cache(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match="could not fetch pretrained timm weights for 'resnet18'") as info:
        create_model("lseg_small_cpu", text_encoder=RandomTextEncoder(dim=16), pretrained=True)
    assert (
        "--model.backbone-weights /path/to/model.safetensors" in str(info.value)
        and info.value.__cause__ is None
    )


def test_offline_open_clip_message(monkeypatch, tmp_path):
    _empty_hf_cache(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match="could not load open_clip weights 'ViT-B-32'") as info:
        OpenCLIPTextEncoder.from_pretrained("ViT-B-32", "openai")
    # OpenAI weights need QuickGELU, so the local-file advice names the -quickgelu architecture.
    assert "name='ViT-B-32-quickgelu', pretrained='/path/to/" in str(info.value)
    with pytest.raises(ValueError, match="open_clip has no model 'ViT-Q-99'"):
        OpenCLIPTextEncoder.from_pretrained("ViT-Q-99", "openai")
    with pytest.raises(ValueError, match="neither an open_clip tag"):
        OpenCLIPTextEncoder.from_pretrained("ViT-B-32", "no-such-tag")


def test_cached_timm_weights_load_offline(monkeypatch, tmp_path):
    import timm
    from safetensors.torch import save_file

    _empty_hf_cache(monkeypatch, tmp_path)
    repo = tmp_path / (
        "models--" + timm.get_pretrained_cfg("resnet18").hf_hub_id.strip("/").replace("/", "--")
    )
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    reference = timm.create_model("resnet18")
    save_file(dict(reference.state_dict()), str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    model = create_model("lseg_small_cpu", text_encoder=RandomTextEncoder(dim=16), pretrained=True)
    assert torch.equal(model.image_encoder.model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


# ---- the three official key manifests (names and shapes only) -> random weights -> our model ----


def _manifest(name: str) -> dict:
    path = REFERENCE / f"{name}.keys.json"
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the official key manifest is missing at {path}")
        pytest.skip(f"official key manifest not found at {path} (set LSEG_NB_SHARED)")
    return json.loads(path.read_text())


def _random_state_dict(keys: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    g, sd = torch.Generator().manual_seed(0), {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.zeros(shape, dtype=torch.long)
        elif math.prod(shape) > 1 << 20:  # big matrices: zeros keep generation fast and memory-light
            sd[k] = torch.zeros(shape)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.02
    return sd


def _check_manifest(name: str, sd: dict, layout: str) -> None:
    assert detect_layout(sd) == layout
    # The named config already matches the official shapes: nothing had to be read from the tensors.
    assert official_config(sd) == get_config(LAYOUT_CONFIGS[layout], backbone_pretrained=False)


def _check_model(model, manifest: dict, layout: str) -> None:
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), model.encode_text(["others", "cat"]))
    assert out.shape == (1, 2, 64, 64) and torch.isfinite(out).all()
    ours = model.state_dict()
    official = lseg_nb_to_official(ours, layout)
    assert {k: tuple(v.shape) for k, v in official.items()} == {
        k: tuple(s) for k, s in manifest["keys"].items()
    }
    back, _ = official_to_lseg_nb(official)
    # Lossless: every tensor comes back under its original name as the very same tensor object.
    assert set(back) == set(ours) and all(back[k] is ours[k] for k in ours)


@pytest.fixture(scope="module")
def vitl_model():
    """One ViT-L/16 LSeg built from the demo manifest; both ViT manifests load into it (same layout)."""
    model, _ = build_from_official(_random_state_dict(_manifest(MANIFESTS[0])["keys"]))
    return model


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("name", MANIFESTS[:2])
def test_official_vit_manifest_converts_loads_and_round_trips(name, vitl_model):
    manifest = _manifest(name)
    sd = _random_state_dict(manifest["keys"])
    _check_manifest(name, sd, "vitl16_384")
    converted, report = official_to_lseg_nb(sd)
    assert sorted(set(report.dropped.values())) == sorted(UNUSED.values())
    assert (
        len(report.dropped) == 2 + 2 + 12 + 152
        and report.mapped + len(report.dropped) == manifest["num_tensors"]
    )
    load_into(vitl_model, converted, name)  # strict: every name and shape must match
    loaded = vitl_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in converted.items())
    _check_model(vitl_model, manifest, "vitl16_384")


@pytest.mark.slow
@pytest.mark.shared
def test_official_resnet101_manifest_without_clip_image_tower_round_trips(tmp_path):
    """Lightning .ckpt -> convert_official (strict load inside) -> safetensors -> load_lseg_nb -> same tensors.

    The file has no CLIP image tower (net.clip_pretrained.visual.*, documented as unused): it still converts.
    The ViT manifests above convert with the tower present.
    """
    manifest = _manifest(MANIFESTS[2])
    sd = _random_state_dict(manifest["keys"])
    _check_manifest(MANIFESTS[2], sd, "rn101")
    converted, report = official_to_lseg_nb(sd)
    assert len(report.dropped) == 12 + 152 and report.mapped + len(report.dropped) == manifest["num_tensors"]
    sd = {k: v for k, v in sd.items() if not k.startswith("net.clip_pretrained.visual.")}
    torch.save(
        {"epoch": 1, "state_dict": sd, "hyper_parameters": {"arch_option": 0}}, tmp_path / "fold0.ckpt"
    )
    del sd
    report = convert_official(tmp_path / "fold0.ckpt", tmp_path / "fold0.safetensors")
    assert report.layout == "rn101" and report.mapped == len(converted)
    model = load_lseg_nb(tmp_path / "fold0.safetensors")
    assert isinstance(model.text_encoder, OpenCLIPTextEncoder) and model.text_encoder.quick_gelu
    loaded = model.state_dict()
    assert set(loaded) == set(converted) and all(torch.equal(loaded[k], converted[k]) for k in converted)
    _check_model(model, manifest, "rn101")


# ---- converter edge cases: errors name the official tensors (fast: they fail before any model is built) ----


@pytest.fixture(scope="module")
def rn101_official() -> dict[str, torch.Tensor]:
    return _random_state_dict(_manifest(MANIFESTS[2])["keys"])


@pytest.mark.shared
def test_unknown_tensor_under_the_clip_image_tower_gets_lseg_nb_message(rn101_official, tmp_path):
    extra = rn101_official | {"net.clip_pretrained.visual.extra_head.weight": torch.zeros(3)}
    with pytest.raises(
        ValueError, match=r"unexpected: net\.clip_pretrained\.visual\.extra_head\.weight\)"
    ) as e:
        build_from_official(extra)
    assert "delete the net.clip_pretrained.visual.* tensors" in str(e.value)
    wide = rn101_official | {"net.clip_pretrained.visual.proj": torch.zeros(1024, 512)}
    with pytest.raises(ValueError, match=r"shape mismatch: net\.clip_pretrained\.visual\.proj \(1024, 512\)"):
        build_from_official(wide)
    # through the converter, the message also names the file
    torch.save({"state_dict": extra}, tmp_path / "odd.ckpt")
    with pytest.raises(ValueError, match=r"odd\.ckpt: net\.clip_pretrained\.visual\.\* is not OpenAI CLIP"):
        convert_official(tmp_path / "odd.ckpt", tmp_path / "odd.safetensors")
    assert not (tmp_path / "odd.safetensors").exists()


@pytest.mark.shared
@pytest.mark.parametrize(
    "official",
    [
        "net.clip_pretrained.ln_final.bias",  # read by open_clip while building the text tower
        "net.clip_pretrained.transformer.resblocks.11.mlp.c_proj.weight",  # only a strict load would notice
        "net.scratch.layer1_rn.weight",  # read to find the decoder width
    ],
)
def test_missing_tensor_errors_name_the_official_tensor(rn101_official, official):
    partial = {k: v for k, v in rn101_official.items() if k != official}
    with pytest.raises(ValueError, match=re.escape(official)):
        build_from_official(partial)


@pytest.mark.shared
def test_missing_decoder_tensor_names_both_names(rn101_official):
    partial = {k: v for k, v in rn101_official.items() if k != "net.scratch.refinenet2.out_conv.bias"}
    with pytest.raises(
        ValueError,
        match=re.escape(
            "missing: decoder.fusion.1.out_conv.bias (net.scratch.refinenet2.out_conv.bias in the source)"
        ),
    ):
        build_from_official(partial, text_encoder=RandomTextEncoder(dim=512))


# ---- round 3: convert never replaces its input, leaves no temporary file; non-finite weights refused ----


def _tiny_safetensors(path: Path) -> bytes:
    from safetensors.torch import save_file

    save_file({"net.scratch.head1.weight": torch.ones(2)}, str(path))
    return path.read_bytes()


@pytest.mark.parametrize("spelling", ["same", "dot", "absolute", "symlink", "hardlink"])
def test_convert_refuses_an_output_that_is_the_input(tmp_path, monkeypatch, spelling):
    src = tmp_path / "lseg_official.safetensors"
    before = _tiny_safetensors(src)
    monkeypatch.chdir(tmp_path)
    if spelling == "symlink":
        (tmp_path / "out.safetensors").symlink_to(src)
    if spelling == "hardlink":
        os.link(src, tmp_path / "out.safetensors")
    dst = {
        "same": "lseg_official.safetensors",
        "dot": "./sub/../lseg_official.safetensors",
        "absolute": str(src),
        "symlink": "out.safetensors",
        "hardlink": "out.safetensors",
    }[spelling]
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="is the input .*converting in place would replace"):
        convert_official("lseg_official.safetensors", dst)
    assert src.read_bytes() == before


INTERRUPTED_CONVERT = """
import sys, time, types
import safetensors.torch
import lseg_nb.checkpoints.official as official
from lseg_nb.apps.cli import main
from lseg_nb.models import RandomTextEncoder, create_model

model = create_model("lseg_small_cpu", text_encoder=RandomTextEncoder(dim=16, seed=0), features=8,
                     backbone="resnet18", backbone_pretrained=False)
# stand-ins: the real conversion needs a full official checkpoint; what is tested is the interrupted write
official.build_from_official = lambda *a, **k: (model, types.SimpleNamespace(layout="rn101"))

def slow_save_file(tensors, filename, metadata=None):  # a big file being written when the signal arrives
    with open(filename, "wb") as f:
        f.write(b"x" * 100_000)
    print("writing", flush=True)
    time.sleep(120)

safetensors.torch.save_file = slow_save_file
sys.exit(main(["convert", sys.argv[1], sys.argv[2]]))
"""


@pytest.mark.parametrize(("signum", "code"), [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_conversion_leaves_no_temporary_file(tmp_path, signum, code):
    import signal
    import subprocess

    torch.save({"state_dict": {"net.x": torch.ones(1)}}, tmp_path / "official.ckpt")
    out = tmp_path / "out" / "lseg.safetensors"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_CONVERT, str(tmp_path / "official.ckpt"), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"  # the temporary file exists now
        assert [p.name for p in out.parent.iterdir()][0].endswith(".tmp")
        proc.send_signal(signal.Signals(signum))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert list(out.parent.iterdir()) == []  # no hidden temporary file, no partial output
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_non_finite_weights_are_refused_naming_the_tensor(tiny_model, text_encoder, tmp_path):
    model = _randomise(tiny_model)
    with torch.no_grad():
        model.head.proj.weight.view(-1)[0] = float("nan")  # one damaged value in 10^4
    name = "head.proj.weight"
    save_lseg_nb(model, tmp_path / "m.safetensors")
    with pytest.raises(
        ValueError, match=rf"m\.safetensors: tensor {re.escape(name)} holds 1 non-finite value"
    ):
        load_lseg_nb(tmp_path / "m.safetensors", text_encoder=RandomTextEncoder(dim=16, seed=0))


def test_non_finite_official_weights_are_refused_before_building(tmp_path):
    sd = {"net.scratch.head1.weight": torch.tensor([1.0, float("inf")]), "net.x": torch.zeros(1)}
    torch.save({"state_dict": sd}, tmp_path / "broken.ckpt")
    with pytest.raises(ValueError, match=r"broken\.ckpt: the checkpoint: tensor net\.scratch\.head1\.weight"):
        convert_official(tmp_path / "broken.ckpt", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
