"""ONNX export on tiny random models of each family, checked with onnxruntime against the PyTorch model itself.

References are computed from ``model.forward`` on inputs padded by hand (not from the exported wrapper), at shapes
the export never saw: other batch sizes, sizes that are no multiple of the backbone stride, other label counts.
The TorchScript exporter is fast and serves the CNN checks; the dynamo exporter (the default, ~20-100 s per
export on a busy CPU) is checked on a ViT and a dense-CLIP tower.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import open_clip
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.apps.cli import main
from lseg_nb.apps.export import export_onnx, export_weights
from lseg_nb.config import TextEncoderConfig
from lseg_nb.engine.provenance import config_sha256
from lseg_nb.engine.runs import save_model
from lseg_nb.models import create_model
from lseg_nb.models.dense_clip import DenseCLIPConfig, create_dense_clip

TINY_CLIP = "lseg-nb-test-tiny-ViT-export"
TINY_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _props(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _reference(model, x, text, owner=None):
    """``model.forward`` on ``x`` zero-padded by hand to the size multiple, logits cropped back; with ``owner`` the
    class maximum over its names."""
    m = model.size_multiple
    h, w = x.shape[-2:]
    xp = F.pad(x, (0, -w % m, 0, -h % m))
    with torch.no_grad():
        logits = model.eval()(xp, text)[..., :h, :w]
    if owner is not None:
        logits = torch.stack(
            [logits[:, [i for i, o in enumerate(owner) if o == c]].amax(1) for c in sorted(set(owner))], 1
        )
    return logits.numpy()


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_cnn_baked_labels_match_pytorch_at_unseen_shapes(tiny_model, text_encoder, tmp_path):
    out = tmp_path / "cnn.onnx"
    report = export_onnx(tiny_model, out, labels="sky, sofa|couch, grass", exporter="torchscript")
    print(report.text())
    assert report.max_abs_diff <= 1e-4 and len(report.checks) == 2
    text = text_encoder.encode(["sky", "sofa", "couch", "grass"])
    session = _session(out)
    for batch, h, w in [(3, 70, 90), (1, 64, 64), (2, 33, 129)]:
        x = _rand(batch, 3, h, w, seed=h)
        got = session.run(["logits"], {"images": x.numpy()})[0]
        ref = _reference(tiny_model, x, text, owner=[0, 1, 1, 2])
        assert got.shape == (batch, 3, h, w)
        assert np.abs(got - ref).max() <= 1e-4


def test_metadata_names_normalisation_labels_config_and_version(tiny_model, tmp_path):
    out = tmp_path / "cnn.onnx"
    export_onnx(tiny_model, out, labels=["sky", "sofa|couch"], exporter="torchscript")
    props = _props(out)
    assert json.loads(props["mean"]) == list(tiny_model.config.mean)
    assert json.loads(props["std"]) == list(tiny_model.config.std)
    assert json.loads(props["labels"]) == [["sky"], ["sofa", "couch"]]
    assert props["config_sha256"] == config_sha256(tiny_model.config)
    assert props["lseg_nb_version"] == "0.1.0" and props["model_family"] == "lseg-cnn"
    assert props["text_input"] == "false" and props["size_multiple"] == "32"
    assert float(props["parity_max_abs_diff"]) <= 1e-4
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["images"]


def test_cnn_text_input_takes_any_label_count_and_batch(tiny_model, text_encoder, tmp_path):
    out = tmp_path / "cnn_text.onnx"
    report = export_onnx(tiny_model, out, text_input=True, exporter="torchscript")
    assert report.max_abs_diff <= 1e-4
    assert report.dynamic_axes["text_embeddings"] == {0: "labels"}
    session = _session(out)
    for batch, k in [(1, 2), (3, 7)]:
        x, text = _rand(batch, 3, 72, 48, seed=k), text_encoder.encode([f"label {i}" for i in range(k)])
        got = session.run(["logits"], {"images": x.numpy(), "text_embeddings": 3 * text.numpy()})[0]
        assert np.abs(got - _reference(tiny_model, x, text)).max() <= 1e-4  # scale of the input ignored


def test_head_blocks_export(block_model, text_encoder, tmp_path):
    out = tmp_path / "block.onnx"
    assert export_onnx(block_model, out, labels="a, b, c", exporter="torchscript").max_abs_diff <= 1e-4
    x = _rand(2, 3, 40, 72)
    got = _session(out).run(["logits"], {"images": x.numpy()})[0]
    assert np.abs(got - _reference(block_model, x, text_encoder.encode(["a", "b", "c"]))).max() <= 1e-4


def test_export_restores_the_models_mode_and_device(tiny_model, tmp_path):
    tiny_model.train()
    before = [m.training for m in tiny_model.modules()]
    assert any(before)
    export_onnx(tiny_model, tmp_path / "m.onnx", labels="a, b", exporter="torchscript")
    assert [m.training for m in tiny_model.modules()] == before
    assert next(tiny_model.parameters()).dtype == torch.float32


@pytest.mark.slow
def test_vit_dynamo_text_input_any_size(tiny_vit, text_encoder, tmp_path):
    out = tmp_path / "vit.onnx"
    report = export_onnx(tiny_vit, out, text_input=True)
    print(report.text())
    assert report.max_abs_diff <= 1e-4 and report.exporter == "dynamo"
    session = _session(out)
    # the pretraining grid (224 = 14 x 16: no position-embedding resize in PyTorch) and sizes off the patch grid
    for batch, h, w, k in [(1, 224, 224, 2), (2, 50, 70, 4)]:
        x, text = _rand(batch, 3, h, w, seed=h), text_encoder.encode([f"t{i}" for i in range(k)])
        got = session.run(["logits"], {"images": x.numpy(), "text_embeddings": text.numpy()})[0]
        assert np.abs(got - _reference(tiny_vit, x, text)).max() <= 1e-4


@pytest.fixture
def tiny_clip(tmp_path):
    path = tmp_path / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    cfg = DenseCLIPConfig(method="naclip", name=TINY_CLIP, pretrained=None, templates=("a photo of a {}.",))
    return create_dense_clip(cfg)


@pytest.mark.slow
def test_dense_clip_naclip_dynamo_baked(tiny_clip, tmp_path):
    """NACLIP's neighbourhood term is built inside the graph from the patch grid: any size, any batch."""
    out = tmp_path / "naclip.onnx"
    report = export_onnx(tiny_clip, out, labels="sky, grass|lawn")
    print(report.text())
    assert report.max_abs_diff <= 1e-4 and _props(out)["model_family"] == "dense-clip"
    text = tiny_clip.encode_text(["sky", "grass", "lawn"])
    for batch, h, w in [(1, 32, 32), (3, 43, 21)]:
        x = _rand(batch, 3, h, w, seed=w)
        got = _session(out).run(["logits"], {"images": x.numpy()})[0]
        assert np.abs(got - _reference(tiny_clip, x, text, owner=[0, 1, 1])).max() <= 1e-4


def test_torchscript_refuses_a_vit_with_the_reason(tiny_vit, tmp_path):
    out = tmp_path / "vit.onnx"
    with pytest.raises(RuntimeError, match="torchscript exporter.*exporter='dynamo'"):
        export_onnx(tiny_vit, out, labels="a, b", exporter="torchscript")
    assert list(tmp_path.iterdir()) == []  # no temporary folder or partial file left


def test_parity_failure_writes_nothing_and_keeps_the_old_file(tiny_model, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous export")
    with pytest.raises(RuntimeError, match="disagrees with PyTorch.*nothing written"):
        export_onnx(tiny_model, out, labels="a, b", exporter="torchscript", tolerance=1e-12)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_labels_and_text_input_are_exclusive(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        export_onnx(tiny_model, tmp_path / "m.onnx", labels="a", text_input=True)
    with pytest.raises(ValueError, match="not both"):
        export_onnx(tiny_model, tmp_path / "m.onnx")


def test_bad_output_paths_are_refused_before_loading_the_model(tmp_path):
    missing_weights = str(tmp_path / "no_such_run")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_weights(missing_weights, tmp_path, labels="a, b")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            export_weights(missing_weights, locked / "m.onnx", labels="a, b")
    with pytest.raises(FileNotFoundError):  # only a good output path gets as far as the weights
        export_weights(missing_weights, tmp_path / "m.onnx", labels="a, b")


@pytest.fixture
def saved_weights(tmp_path):
    torch.manual_seed(0)
    model = create_model(
        "lseg_small_cpu",
        backbone="resnet18",
        features=8,
        text=TextEncoderConfig(kind="random", name="random", dim=16),
    )
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    return path


def test_cli_export_prints_parity_and_writes_the_file(saved_weights, tmp_path, capsys):
    out = tmp_path / "exported" / "m.onnx"
    args = ["export", "--weights", str(saved_weights), "--out", str(out), "--exporter", "torchscript"]
    assert main([*args, "--labels", "sky,", "sofa|couch", "grass"]) == 0
    printed = capsys.readouterr().out
    assert "max |diff|" in printed and str(out) in printed
    props = _props(out)
    assert json.loads(props["labels"]) == [["sky"], ["sofa", "couch"], ["grass"]]
    assert props["weights"] == str(saved_weights) and len(props["weights_sha256"]) == 64


def test_cli_export_errors_are_one_line(saved_weights, tmp_path, capsys):
    assert main(["export", "--weights", str(saved_weights), "--out", str(tmp_path), "--text-input"]) == 2
    err = capsys.readouterr().err
    assert "lseg-nb export: error:" in err and "is a folder" in err and "Traceback" not in err
    assert main(["export", "--weights", str(saved_weights), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "--labels" in capsys.readouterr().err
