"""Command line: help, model list, clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
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
