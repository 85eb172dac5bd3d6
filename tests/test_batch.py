"""Batch prediction (issue 21): inputs, outputs equal to one-image prediction, formats, resume, failures, safety,
and the CLI form ``lseg-nb predict IMAGES... --out-dir OUT``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lseg_nb.apps.batch import output_file, predict_folder
from lseg_nb.apps.cli import main
from lseg_nb.checkpoints import save_lseg_nb
from lseg_nb.config import DataConfig, EvalConfig, TextEncoderConfig, TrainConfig, get_config, save_json
from lseg_nb.engine.batch import collect_images, predict_images
from lseg_nb.engine.feature_store import load_features, read_feature_manifest
from lseg_nb.engine.features import extract_features
from lseg_nb.engine.predictor import Predictor
from lseg_nb.models.lseg import create_model
from lseg_nb.utils.labels import LabelSplit

LABELS = LabelSplit.from_labels("sky, grass|lawn, cow")


def _images(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = [root / "a" / "0001.png", root / "b" / "0001.png", root / "b" / "deep" / "x.jpg"]
    for i, p in enumerate(paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(p)
    return paths


def test_inputs_files_folders_globs_and_lists_keep_apart(tmp_path):
    a1, b1, x = _images(tmp_path)
    assert [k for _, k in collect_images([str(tmp_path)])] == ["a/0001.png", "b/0001.png", "b/deep/x.jpg"]
    listing = tmp_path / "list.txt"
    listing.write_text("# two images\nb/deep/x.jpg\na/0001.png\n")
    got = collect_images([f"@{listing}", str(tmp_path / "b" / "*.png"), str(a1)])
    assert [p for p, _ in got] == [x.resolve(), a1.resolve(), b1.resolve()]  # each once, in order
    assert [k for _, k in got] == ["b/deep/x.jpg", "a/0001.png", "b/0001.png"]
    with pytest.raises(FileNotFoundError, match="no such image file"):
        collect_images([str(tmp_path / "missing.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        collect_images([str(tmp_path / "empty")])


def test_outputs_equal_one_image_prediction_with_documented_formats(tmp_path, tiny_model):
    paths = _images(tmp_path / "in")
    out = tmp_path / "out"
    summary = predict_folder(
        tiny_model,
        [str(tmp_path / "in")],
        LABELS,
        out,
        save=["mask,probs", "features", "overlay"],
        progress=False,
    )
    assert summary.predicted == 3 and not summary.failed
    predictor = Predictor(tiny_model)
    for path, key in zip(paths, ["a/0001.png", "b/0001.png", "b/deep/x.jpg"], strict=True):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        predictor.set_image(rgb)
        want = predictor.predict_mask(LABELS).numpy()
        with Image.open(output_file(out, "mask", key)) as m:
            assert m.mode == "P" and m.size == (rgb.shape[1], rgb.shape[0])
            np.testing.assert_array_equal(np.array(m), want)
        probs = np.load(output_file(out, "probs", key))
        assert probs.dtype == np.float16 and probs.shape == (3, *rgb.shape[:2])
        np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1, atol=5e-3)
        feats = load_features(output_file(out, "features", key))
        ref = extract_features(tiny_model, rgb).cpu()
        assert feats.shape == ref.shape and float((feats - ref).abs().max()) < 2e-3
        assert output_file(out, "overlay", key).is_file()
    assert output_file(out, "mask", "b/deep/x.jpg") == out / "masks" / "b" / "deep" / "x.png"
    classes = json.loads((out / "labels.json").read_text())["classes"]
    assert [c["names"] for c in classes] == [["sky"], ["grass", "lawn"], ["cow"]]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == ["a/0001.png", "b/0001.png", "b/deep/x.jpg"]
    assert all(abs(sum(r["shares"].values()) - 1) < 1e-4 for r in rows)
    manifest = read_feature_manifest(out / "features")
    assert set(manifest["files"]) == {"a/0001.npy", "b/0001.npy", "b/deep/x.npy"} and manifest["texts"]
    assert json.loads((out / "predict.json").read_text())["identity"]["save"] == [
        "mask",
        "probs",
        "features",
        "overlay",
    ]


def test_rerun_skips_complete_images_and_refuses_other_labels(tmp_path, tiny_model):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, out, progress=False)
    again = predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, out, progress=False)
    assert (again.predicted, again.skipped) == (0, 3)
    output_file(out, "mask", "b/0001.png").unlink()
    assert predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, out, progress=False).predicted == 1
    other = LabelSplit.from_labels("sky, tree")
    with pytest.raises(ValueError, match="holds predictions of another labels"):
        predict_folder(tiny_model, [str(tmp_path / "in")], other, out, progress=False)
    redone = predict_folder(tiny_model, [str(tmp_path / "in")], other, out, overwrite=True, progress=False)
    assert redone.predicted == 3


def test_a_corrupt_image_is_listed_and_the_rest_written(tmp_path, tiny_model):
    _images(tmp_path / "in")
    (tmp_path / "in" / "a" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    summary = predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, out, progress=False)
    assert summary.predicted == 3 and [k for k, _ in summary.failed] == ["a/broken.png"]
    assert (out / "failures.txt").read_text().startswith("a/broken.png\t")


def test_output_folder_that_is_a_file_is_refused_before_work(tmp_path, tiny_model):
    _images(tmp_path / "in")
    (tmp_path / "out").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, tmp_path / "out", progress=False)


def test_protocol_decision_rule_reaches_every_image(tmp_path, tiny_model):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    labels = LabelSplit.from_labels("background, sky, cow", background=0)
    protocol = EvalConfig(logit_scale=40.0, prob_thd=0.99)  # nearly every pixel below: background
    predict_folder(tiny_model, [str(tmp_path / "in")], labels, out, protocol, progress=False)
    predictor = Predictor(tiny_model, protocol)
    predictor.set_image(np.asarray(Image.open(tmp_path / "in" / "a" / "0001.png").convert("RGB")))
    want = predictor.predict_mask(labels).numpy()
    np.testing.assert_array_equal(np.array(Image.open(output_file(out, "mask", "a/0001.png"))), want)


@pytest.fixture
def weights(tmp_path) -> Path:
    cfg = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    run = tmp_path / "run"
    run.mkdir()
    save_json(TrainConfig(model=cfg, data=DataConfig(), run_dir=str(run)), run / "config.json")
    torch.manual_seed(0)
    save_lseg_nb(create_model(cfg), run / "model.safetensors")
    return run


def test_cli_writes_a_folder_and_exits_1_when_an_image_failed(tmp_path, weights, capsys):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    args = [
        "predict",
        str(tmp_path / "in"),
        "--weights",
        str(weights),
        "--out-dir",
        str(out),
        "--labels",
        "sky",
        "cow",
    ]
    assert main(args) == 0
    assert "3 images predicted" in capsys.readouterr().out
    assert len(list((out / "masks").rglob("*.png"))) == 3
    (tmp_path / "in" / "bad.jpg").write_bytes(b"junk")
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 1
    out_text = capsys.readouterr().out
    assert "3 already complete, 1 failed" in out_text and "failed: bad.jpg" in out_text
    assert main(["predict", "--weights", str(weights), "--out-dir", str(out), "--labels", "sky"]) == 2


def test_size_grouped_batches_equal_one_image_at_a_time(tmp_path, tiny_model):
    rng = np.random.default_rng(5)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, shape in enumerate(
        [(40, 56), (40, 56), (40, 56), (48, 56), (40, 56)]
    ):  # a size change splits a group
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "2b.png").write_bytes(b"broken")  # an error inside a run of same-size images
    images = collect_images([str(folder)])
    one = list(predict_images(tiny_model, images, LABELS, probs=True))
    grouped = list(predict_images(tiny_model, images, LABELS, probs=True, batch_size=3))
    assert (
        [p.key for p in grouped]
        == [p.key for p in one]
        == ["0.png", "1.png", "2.png", "2b.png", "3.png", "4.png"]
    )
    for a, b in zip(one, grouped, strict=True):
        assert (a.error is None) == (b.error is None)
        if a.error is None:
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
            np.testing.assert_array_equal(a.mask, b.mask)


def test_more_than_256_classes_write_16_bit_masks(tmp_path, tiny_model):
    _images(tmp_path / "in")
    labels = LabelSplit.from_labels([f"class {i}" for i in range(300)])
    out = tmp_path / "out"
    predict_folder(tiny_model, [str(tmp_path / "in" / "a")], labels, out, progress=False)
    with Image.open(output_file(out, "mask", "0001.png")) as m:
        assert m.mode in ("I;16", "I") and np.array(m).max() < 300


def test_a_run_stopped_mid_folder_resumes_without_partial_files(tmp_path, tiny_model, monkeypatch):
    import errno

    from lseg_nb.apps import batch

    _images(tmp_path / "in")
    out = tmp_path / "out"
    real, calls = batch.atomic_save_png, []

    def disk_fills_up(array, path, palette=None):  # the second mask finds the disk full
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(array, path, palette)

    monkeypatch.setattr(batch, "atomic_save_png", disk_fills_up)
    with pytest.raises(OSError, match="no space left in .* rerun the same command"):
        predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, out, progress=False)
    monkeypatch.setattr(batch, "atomic_save_png", real)
    written = sorted(
        p.relative_to(out / "masks").as_posix() for p in (out / "masks").rglob("*") if p.is_file()
    )
    # the failed image left nothing behind, not even a temporary file; images already queued were completed
    assert (
        "b/0001.png" not in written and "a/0001.png" in written and all(w.endswith(".png") for w in written)
    )
    again = predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, out, progress=False)
    assert again.predicted == 1 and again.skipped == 2 and not again.failed
    keys = [json.loads(line)["key"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(set(keys)) == ["a/0001.png", "b/0001.png", "b/deep/x.jpg"]


def test_a_full_output_folder_is_refused_before_work(tmp_path, tiny_model, monkeypatch):
    import shutil

    from lseg_nb.apps import batch

    _images(tmp_path / "in")
    monkeypatch.setattr(batch.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 1 << 20))
    with pytest.raises(OSError, match="1 MiB free"):
        predict_folder(tiny_model, [str(tmp_path / "in")], LABELS, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "predict.json").exists()
