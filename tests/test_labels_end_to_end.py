"""Labels from the CLI and the Python API to the prediction: one syntax, nothing silently merged or misread."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from lseg_nb.apps.cli import main
from lseg_nb.checkpoints import save_lseg_nb
from lseg_nb.config import DataConfig, TextEncoderConfig, TrainConfig, save_json
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.engine.evaluate import evaluate_run
from lseg_nb.engine.predictor import Predictor
from lseg_nb.models import RandomTextEncoder, create_model, get_config
from lseg_nb.utils.errors import InputError


class UncasedRandomText(RandomTextEncoder):
    """A random text encoder that ignores case, as uncased encoders do."""

    def _embed(self, texts: list[str]) -> torch.Tensor:
        return super()._embed([t.lower() for t in texts])


def _model(text=None):
    torch.manual_seed(0)
    cfg = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    return create_model(cfg, text_encoder=text)


def test_labels_the_text_encoder_cannot_tell_apart_are_refused():
    p = Predictor(_model(UncasedRandomText(dim=16)))
    p.set_image(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="'Cat' and 'cat' get the same text embedding"):
        p.predict_mask("Cat, cat, sky")
    assert p.predict_mask("Cat|cat, sky").shape == (32, 32)  # one class with both names is fine


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = generate_synthetic(tmp_path_factory.mktemp("synth"), seed=0, n_train=2, n_val=2, n_test=2, size=64)
    folder = tmp_path_factory.mktemp("run")
    model = _model()
    cfg = TrainConfig(
        model=model.config,
        data=DataConfig(dataset="synthetic_textures", data_root=str(root), fold=0),
        run_dir=str(folder),
        progress=False,
    )
    save_json(cfg, folder / "config.json")
    save_lseg_nb(model, folder / "model.safetensors")
    return folder, root


def _predict(run_dir, image, tmp_path, *labels: str) -> list[str]:
    return [
        "predict",
        "--weights",
        str(run_dir),
        "--image",
        str(image),
        "--out",
        str(tmp_path / "p.png"),
        *labels,
    ]


def test_cli_labels_follow_the_explorer_syntax(run, tmp_path, capsys):
    folder, root = run
    image = root / "images" / "test_0000.png"
    # a comma inside one argument separates classes, as in the label explorer (it used to be one label at 100 %)
    assert main(_predict(folder, image, tmp_path, "--labels", "sky, road, car")) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0].strip() for line in out.splitlines() if "% of pixels" in line] == [
        "sky",
        "road",
        "car",
    ]
    assert "protocol: single" in out
    # '|' joins names of one class, reported by its first name
    assert main(_predict(folder, image, tmp_path, "--labels", "sky|air", "road")) == 0
    assert [ln.split(":")[0].strip() for ln in capsys.readouterr().out.splitlines() if "% of" in ln] == [
        "sky",
        "road",
    ]


def test_a_single_label_says_what_the_softmax_does(run, tmp_path, capsys):
    folder, root = run
    assert main(_predict(folder, root / "images" / "test_0000.png", tmp_path, "--labels", "sky")) == 0
    out = capsys.readouterr().out
    assert "the softmax over one label is always 100%" in out and "100.0% of pixels" in out


def test_labels_files_are_explicit(run, tmp_path, capsys):
    folder, root = run
    image = root / "images" / "test_0000.png"
    labels = tmp_path / "labels.txt"
    labels.write_text("sky\nsofa|couch\n")
    assert main(_predict(folder, image, tmp_path, "--labels-file", str(labels))) == 0
    assert "sofa" in capsys.readouterr().out
    # a lone label that is an existing file is not silently taken as label text
    assert main(_predict(folder, image, tmp_path, "--labels", str(labels))) == 2
    assert f"--labels-file {labels}" in capsys.readouterr().err
    labels.write_text("sky\n\nsofa\n")
    assert main(_predict(folder, image, tmp_path, "--labels-file", str(labels))) == 2
    assert f"{labels}:2 is blank" in capsys.readouterr().err


def test_another_fold_keeps_seen_and_unseen_true_to_the_training(run):
    """Scored on fold 1, the run (trained on fold 0) calls 'seen' exactly the classes it was trained on."""
    folder, _ = run
    saved = json.loads((folder / "config.json").read_text())
    data = DataConfig(**{**saved["data"], "fold": 1, "scale_range": tuple(saved["data"]["scale_range"])})
    result = evaluate_run(folder, data, progress=False)
    trained_unseen = {"red stripes", "green dots", "blue checks", "yellow plain"}  # fold 0
    assert set(result.labels.unseen_names) == trained_unseen
    assert any(
        "trained on synthetic_textures fold 0, scored on synthetic_textures fold 1" in n for n in result.notes
    )
    same = evaluate_run(folder, progress=False)
    assert set(same.labels.unseen_names) == trained_unseen and not same.notes


def test_one_quoted_label_of_several_words_gets_the_comma_hint(run, tmp_path, capsys):
    folder, root = run
    image = root / "images" / "test_0000.png"
    assert main(_predict(folder, image, tmp_path, "--labels", "sky road car")) == 0
    out = capsys.readouterr().out
    assert "if 'sky road car' is 3 labels, separate them with commas (--labels 'sky, road, car')" in out


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["sky,,car"], r"--labels\[1\] is blank"),  # used to be dropped: two classes exported
        (["sky", "sky"], "label 'sky' is given twice in --labels"),
    ],
)
def test_export_reads_labels_like_predict(labels, message, tmp_path, capsys):
    # refused before any weights are read (the weights path does not exist)
    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", str(tmp_path / "none"), "--out", str(out), "--labels", *labels]) == 2
    err = capsys.readouterr().err.splitlines()[0]
    assert re.search(message, err), err
    assert not out.exists()
