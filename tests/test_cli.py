"""Command line: help, model list, clear errors for bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from lseg_nb.apps.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "train", "evaluate", "predict", "convert", "models", "prepare"):
        assert cmd in out


def test_models_command_lists_named_configs(capsys):
    assert main(["models"]) == 0
    assert "lseg_vitl16_384" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    assert main(["trian"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_bad_config_file_is_one_clear_line(tmp_path, capsys):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"optimizer": "lion"}))
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "TrainConfig.optimizer" in err and "Traceback" not in err


def test_unknown_dataset_is_explained(tmp_path, capsys):
    code = main(["train", "--run-dir", str(tmp_path / "r"), "--data.dataset", "no_such_set", "--no-progress"])
    assert code == 2
    assert "no_such_set" in capsys.readouterr().err


def test_predict_with_missing_weights_is_explained(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code = main(["predict", "--weights", str(tmp_path / "none"), "--image", str(image), "--labels", "cat"])
    assert code == 2
    assert "no model weights" in capsys.readouterr().err


def test_predict_with_missing_image_is_explained(tmp_path, capsys):
    code = main(["predict", "--weights", str(tmp_path / "none"), "--image", "x.png", "--labels", "cat"])
    assert code == 2
    assert "image x.png does not exist" in capsys.readouterr().err


def test_prepare_names_the_missing_folder_and_its_source(tmp_path, capsys):
    assert main(["prepare", "ade20k", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ADEChallengeData2016/images does not exist" in err and "ADEChallengeData2016.zip" in err
    for split in ("images", "annotations"):
        (tmp_path / "ADEChallengeData2016" / split / "validation").mkdir(parents=True)
    (tmp_path / "ADEChallengeData2016" / "images" / "validation" / "ADE_val_00000001.jpg").touch()
    (tmp_path / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000001.png").touch()
    assert main(["prepare", "ade20k150", "--root", str(tmp_path)]) == 0
    assert "validation: 1 images with annotations" in capsys.readouterr().out


TINY = [
    "--model.features",
    "8",
    "--model.crop-size",
    "64",
    "--model.text.kind",
    "random",
    "--model.text.dim",
    "16",
    "--data.max-images",
    "4",
    "--batch-size",
    "2",
    "--no-progress",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-step run of a tiny random-text model on the synthetic set (fold 0), trained through the CLI."""
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--run-dir", str(run), "--steps", "2", "--log-every", "1", *TINY]) == 0
    return run


def test_train_ends_with_a_summary_and_a_loss_curve(tiny_run, capsys):
    assert (tiny_run / "loss_curve.png").stat().st_size > 0
    # the same command again: the run is finished, nothing is retrained, the summary says so
    assert main(["train", "--run-dir", str(tiny_run), "--steps", "2", "--log-every", "1", *TINY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "training finished at step 2 of 2: nothing to train: the run is already at step 2"
    )
    loss = [json.loads(r) for r in (tiny_run / "metrics.jsonl").read_text().splitlines()][-1]["loss"]
    assert out[1] == f"final training loss: {loss:.4f} (logged at step 2)"
    assert out[2] == f"run folder: {tiny_run} (loss curve: loss_curve.png)"
    assert f"  lseg-nb evaluate --run {tiny_run}" in out


def test_evaluate_prints_a_readable_table(tiny_run, capsys):
    assert main(["evaluate", "--run", str(tiny_run), "--max-images", "3", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "synthetic_textures, test split, fold 0 (unseen: red stripes, green dots, blue checks, yellow plain), "
        "3 images"
    )
    assert lines[1].startswith("inference: single")
    settings = [re.split(r"\s{2,}", line.strip())[0] for line in lines[4:10]]
    assert settings[0] == "all 16 labels (generalised zero-shot)"
    assert settings[3] == "unseen 4 labels only (ZS3Net/SPNet-style)"
    assert sum(s.startswith("chance:") for s in settings) == 4
    assert "confusion" in out.split("\n", 10)[-1]  # only the line naming the JSON file mentions them
    assert "[" not in out and "{" not in out and len(lines) == 12
    saved = json.loads((tiny_run / "eval_test_single.json").read_text())
    assert (
        saved["num_images"] == 3
        and len(saved["confusion"]) == 16
        and saved["dataset"] == "synthetic_textures"
    )
    assert (tiny_run / "eval_test_single_examples.png").stat().st_size > 0


def test_evaluate_json_is_real_json_on_stdout(tiny_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    args = ["evaluate", "--run", str(tiny_run), "--max-images", "2", "--json", "--examples", "0"]
    assert main([*args, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["fold"] == 0 and printed["unseen_only"] is not None and printed["num_images"] == 2
    assert not (tmp_path / "e_examples.png").exists()


def test_evaluate_without_a_fold(tiny_run, tmp_path, capsys):
    out = tmp_path / "nofold.json"
    weights = str(tiny_run / "model.safetensors")
    args = ["evaluate", "--model", weights, "--dataset", "synthetic_textures", "--max-images", "2"]
    assert main([*args, "--out", str(out), "--examples", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "synthetic_textures, test split, no zero-shot fold, 2 images"
    assert lines[2].split() == ["setting", "mIoU", "pixel", "acc"]
    assert lines[4].startswith("all 16 labels (fixed set)")
    assert json.loads(out.read_text())["unseen_only"] is None
    assert (tmp_path / "nofold_examples.png").is_file()
    assert main([*args, "--examples", "-1"]) == 2
    assert "--examples must be >= 0" in capsys.readouterr().err
