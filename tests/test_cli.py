"""Command line: help, model list, clear one-line errors for bad input (exit 2), LSEG_NB_DEBUG tracebacks."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lseg_nb.apps.cli import main
from lseg_nb.checkpoints import save_lseg_nb
from lseg_nb.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    TextEncoderConfig,
    TrainConfig,
    get_config,
    save_json,
)
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.models import create_model

REPO = Path(__file__).resolve().parents[1]


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


# ---- reliability: every bad input is one line naming the flag/file, exit 2; nothing silently wrong ----


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synth"), seed=0, n_train=4, n_val=2, n_test=2, size=64)


def _tiny_model_config() -> ModelConfig:
    return get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )


@pytest.fixture(scope="module")
def tiny_run(synth_root, tmp_path_factory) -> Path:
    """An (untrained) run folder: config.json + model.safetensors, enough for evaluate and predict."""
    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        model=_tiny_model_config(),
        data=DataConfig(dataset="synthetic_textures", data_root=str(synth_root), fold=0),
        run_dir=str(run),
        progress=False,
    )
    save_json(cfg, run / "config.json")
    torch.manual_seed(0)
    save_lseg_nb(create_model(cfg.model), run / "model.safetensors")
    return run


def _error_line(capsys) -> str:
    """The CLI's one error line (the only other line is the LSEG_NB_DEBUG hint); no traceback, no tyro box."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[1].startswith("(set LSEG_NB_DEBUG=1"), err
    assert not any(c in err[0] for c in "│╭╰") and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--model.crop-size", "0"], "--model.crop-size: must be >= 1, got 0"),
        (["--data.scale-range", "-1", "2"], "--data.scale-range: needs 0 < min <= max, got (-1.0, 2.0)"),
        (["--data.num-workers", "-1"], "--data.num-workers: must be >= 0"),
        (["--model.features", "abc"], "--model.features: invalid literal for int()"),
        (["--model.features", "-8"], "--model.features: must be >= 1, got -8"),
        (["--model.readout", "bogus"], "invalid choice 'bogus' for argument '--model.readout'"),
        (["--model.text.dim", "0"], "--model.text.dim: must be >= 1, got 0"),
        (["--lr", "inf"], "--lr=inf is not a finite number"),
        (["--optimizer", "sgd", "--lr", "nan"], "--lr=nan is not a finite number"),
        (["--lr", "0"], "--lr: must be a finite number > 0, got 0.0"),
        (["--log-every", "0"], "--log-every: must be >= 1, got 0"),
        (["--steps", "-3"], "--steps: must be >= 1, got -3"),
        (
            ["--unseen-pixels", "others"],
            "--unseen-pixels: 'others' is the official zero-shot episode treatment",
        ),
        (["--zzzz", "3"], "unknown flag --zzzz; `lseg-nb train --help` lists every flag"),  # no close flag
    ],
)
def test_bad_train_flags_are_one_line_naming_the_flag(flags, expected, capsys):
    assert main(["train", "--dry-run", *flags]) == 2
    line = _error_line(capsys)
    assert line.startswith("lseg-nb train: error: ") and expected in line


def test_demo_refuses_non_positive_steps_before_any_work(tmp_path, capsys):
    run = tmp_path / "demo"
    assert main(["demo", "--steps", "-3", "--run-dir", str(run)]) == 2
    assert "lseg-nb demo: error: --steps: must be >= 1, got -3" in _error_line(capsys)
    assert main(["demo", "--max-images", "0", "--run-dir", str(run)]) == 2
    assert "--max-images: must be >= 1" in _error_line(capsys)
    assert not run.exists()


def test_help_still_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0 and "--model.crop-size" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["grass", "  ", "flower"], "--labels[1] is blank"),
        (["flower", "grass", "flower", "sky"], "label 'flower' is given twice in --labels"),
    ],
)
def test_predict_refuses_blank_and_duplicate_labels(tiny_run, synth_root, tmp_path, labels, message, capsys):
    image = synth_root / "images" / "test_0000.png"
    out = tmp_path / "pred.png"
    args = [
        "predict",
        "--weights",
        str(tiny_run),
        "--image",
        str(image),
        "--out",
        str(out),
        "--labels",
        *labels,
    ]
    assert main(args) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_evaluate_max_images_0_keeps_the_earlier_result(tiny_run, capsys):
    out = tiny_run / "eval.json"
    base = ["evaluate", "--run", str(tiny_run), "--split", "val", "--out", str(out), "--json"]
    assert main([*base, "--data.max-images", "1"]) == 0
    before = out.read_text()
    assert json.loads(before)["num_images"] == 1
    capsys.readouterr()
    assert main([*base, "--data.max-images", "0"]) == 2
    assert "--data.max-images: must be >= 1" in _error_line(capsys)
    # the same file for a different evaluation is refused before any work, unless --overwrite
    assert main([*base, "--data.max-images", "2"]) == 2
    assert "holds a different evaluation" in _error_line(capsys)
    assert out.read_text() == before
    assert main([*base, "--data.max-images", "2", "--overwrite"]) == 0
    assert json.loads(out.read_text())["num_images"] == 2


def test_output_paths_are_checked_before_the_work(tiny_run, synth_root, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # no data at --data-root: had the work started first, the error would be about the missing data
    args = ["evaluate", "--run", str(tiny_run), "--data.data-root", str(tmp_path / "none"), "--out"]
    assert main([*args, str(blocker / "eval.json")]) == 2
    assert f"--out {blocker / 'eval.json'} lies below {blocker}, which is a file" in _error_line(capsys)
    assert main([*args, str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in _error_line(capsys)
    image = synth_root / "images" / "test_0000.png"
    predict = ["predict", "--weights", str(tiny_run), "--image", str(image), "--labels", "red", "blue"]
    assert main([*predict, "--out", str(blocker / "pred.png")]) == 2
    assert "lies below" in _error_line(capsys)
    train = ["train", "--data.data-root", str(tmp_path / "none"), "--no-progress", "--run-dir"]
    assert main([*train, str(blocker)]) == 2
    assert f"run_dir {blocker} is a file, not a folder" in _error_line(capsys)
    assert main([*train, str(blocker / "run")]) == 2
    assert f"run_dir {blocker / 'run'} lies below {blocker}, which is a file" in _error_line(capsys)
    assert blocker.read_text() == "not a folder"


# One case per error family the CLI turns into one line (exit 2); LSEG_NB_DEBUG=1 re-raises it instead.
def _os_error(tmp_path: Path) -> list[str]:
    (tmp_path / "file").write_text("x")
    return ["train", "--run-dir", str(tmp_path / "file" / "run"), "--no-progress"]


def _yaml_error(tmp_path: Path) -> list[str]:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"steps: 3\nrun_dir: !!python/object/apply:os.mkdir ['{tmp_path / 'pwned'}']\n")
    return ["train", "--config", str(cfg), "--dry-run"]


def _pickle_error(tmp_path: Path) -> list[str]:
    torch.save({"state_dict": {}, "x": _Evil(str(tmp_path / "pwned"))}, tmp_path / "evil.ckpt")
    return ["convert", str(tmp_path / "evil.ckpt"), str(tmp_path / "out.safetensors")]


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.mark.parametrize(
    ("make_args", "raised", "message"),
    [
        (_os_error, NotADirectoryError, "lies below"),
        (_yaml_error, ConfigError, "run.yaml: not a plain-data YAML file"),
        (_pickle_error, ValueError, "evil.ckpt could not be loaded with weights_only=True (posix.mkdir)"),
    ],
    ids=["OSError", "YAML", "pickle"],
)
def test_error_families_are_one_line_and_debug_shows_them(
    make_args, raised, message, tmp_path, capsys, monkeypatch
):
    args = make_args(tmp_path)
    assert main(args) == 2
    assert message in _error_line(capsys)
    monkeypatch.setenv("LSEG_NB_DEBUG", "1")
    with pytest.raises(raised):
        main(args)
    assert not (tmp_path / "pwned").exists()  # no code from the file ever ran


def _train_args(synth_root: Path, run: Path, *flags: str) -> list[str]:
    cfg = TrainConfig(
        model=_tiny_model_config(),
        data=DataConfig(dataset="synthetic_textures", data_root=str(synth_root), fold=0),
        run_dir=str(run),
        steps=3,
        batch_size=2,
        log_every=1,
        checkpoint_every=1,
        progress=False,
    )
    save_json(cfg, run.parent / "cfg.json")
    return ["train", "--config", str(run.parent / "cfg.json"), *flags]


def test_arithmetic_error_non_finite_loss_is_one_line_and_debug_shows_it(
    synth_root, tmp_path, capsys, monkeypatch
):
    # inputs divided by a std of 1e-45 overflow to inf: the very first loss is not finite
    # (tests/test_train.py checks that a loss diverging later keeps the last good checkpoint)
    args = _train_args(synth_root, tmp_path / "run", "--model.std", "1e-45", "1e-45", "1e-45")
    assert main(args) == 2
    assert "loss became nan at step 1; training stopped" in _error_line(capsys)
    monkeypatch.setenv("LSEG_NB_DEBUG", "1")
    with pytest.raises(FloatingPointError, match="at step 1"):
        main(args)


def test_disk_full_names_the_path(synth_root, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    assert main(_train_args(synth_root, tmp_path / "run")) == 2
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert f"cannot write {last}: No space left on device" in _error_line(capsys)
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []  # no temporary file left behind


@pytest.mark.slow
def test_real_process_prints_no_traceback_unless_debugging(tmp_path):
    (tmp_path / "file").write_text("x")
    cmd = [sys.executable, "-m", "lseg_nb", "train", "--run-dir", str(tmp_path / "file" / "run")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "lies below" in plain.stderr
    env["LSEG_NB_DEBUG"] = "1"
    debug = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "NotADirectoryError" in debug.stderr


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
def trained_run(tmp_path_factory):
    """A 2-step run of a tiny random-text model on the synthetic set (fold 0), trained through the CLI."""
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--run-dir", str(run), "--steps", "2", "--log-every", "1", *TINY]) == 0
    return run


def test_train_ends_with_a_summary_and_a_loss_curve(trained_run, capsys):
    assert (trained_run / "loss_curve.png").stat().st_size > 0
    # the same command again: the run is finished, nothing is retrained, the summary says so
    assert main(["train", "--run-dir", str(trained_run), "--steps", "2", "--log-every", "1", *TINY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "training finished at step 2 of 2: nothing to train: the run is already at step 2"
    )
    loss = [json.loads(r) for r in (trained_run / "metrics.jsonl").read_text().splitlines()][-1]["loss"]
    assert out[1] == f"final training loss: {loss:.4f} (logged at step 2)"
    assert out[2] == f"run folder: {trained_run} (loss curve: loss_curve.png)"
    assert f"  lseg-nb evaluate --run {trained_run}" in out


def test_evaluate_prints_a_readable_table(trained_run, capsys):
    assert main(["evaluate", "--run", str(trained_run), "--data.max-images", "3", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "synthetic_textures, test split, fold 0 (unseen: red stripes, green dots, blue checks, yellow plain), "
        "3 images"
    )
    assert lines[1].startswith("protocol: single")
    settings = [re.split(r"\s{2,}", line.strip())[0] for line in lines[4:10]]
    assert settings[0] == "all 16 labels (generalised zero-shot)"
    assert settings[3] == "unseen 4 labels only (ZS3Net/SPNet-style)"
    assert sum(s.startswith("chance:") for s in settings) == 4
    assert "confusion" in out.split("\n", 10)[-1]  # only the line naming the JSON file mentions them
    assert "{" not in out and len(lines) == 13
    # the name carries what changes the numbers: dataset, split, fold, protocol, the image cap
    name = "eval_synthetic_textures_test_fold0_single_first3"
    saved = json.loads((trained_run / f"{name}.json").read_text())
    assert (
        saved["num_images"] == 3
        and len(saved["settings"]["all_labels"]["confusion"]) == 16
        and saved["dataset"] == "synthetic_textures"
    )
    assert (trained_run / f"{name}_examples.png").stat().st_size > 0
    assert (trained_run / f"{name}_per_class.png").stat().st_size > 0
    # another fold goes to another file: the first result is kept
    assert main(["evaluate", "--run", str(trained_run), "--data.max-images", "3", "--data.fold", "1"]) == 0
    assert (trained_run / f"{name}.json").is_file() and (
        trained_run / f"{name.replace('fold0', 'fold1')}.json"
    ).is_file()


def test_evaluate_json_is_real_json_on_stdout(trained_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    args = ["evaluate", "--run", str(trained_run), "--data.max-images", "2", "--json", "--examples", "0"]
    assert main([*args, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["fold"] == 0 and "unseen_only" in printed["settings"] and printed["num_images"] == 2
    assert not (tmp_path / "e_examples.png").exists()


def test_evaluate_without_a_fold(trained_run, tmp_path, capsys):
    out = tmp_path / "nofold.json"
    weights = str(trained_run / "model.safetensors")
    args = ["evaluate", "--model", weights, "--data.dataset", "synthetic_textures", "--data.max-images", "2"]
    assert main([*args, "--out", str(out), "--examples", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "synthetic_textures, test split, no zero-shot fold, 2 images"
    assert lines[2].split() == ["setting", "mIoU", "Open", "mIoU", "pixel", "acc"]
    assert lines[4].startswith("all 16 labels (fixed set)")
    assert "unseen_only" not in json.loads(out.read_text())["settings"]
    assert (tmp_path / "nofold_examples.png").is_file()
    assert main([*args, "--examples", "-1"]) == 2
    assert "--examples must be >= 0" in capsys.readouterr().err


def test_evaluate_calibrate_seen_reports_both_generalised_rows(trained_run, tmp_path, capsys):
    out = tmp_path / "cal.json"
    args = ["evaluate", "--run", str(trained_run), "--data.max-images", "2", "--examples", "0"]
    args.append("--eval.calibrate-seen")
    assert main([*args, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(
        i for i, line in enumerate(lines) if line.split()[:2] == ["setting", "mIoU"]
    )  # after the notes
    settings = [re.split(r"\s{2,}", line.strip())[0] for line in lines[head + 2 : head + 4]]
    assert settings[0] == "all 16 labels (generalised zero-shot)"
    assert settings[1].startswith("all 16 labels, seen-bias calibrated (offset ")
    saved = json.loads(out.read_text())["settings"]
    assert saved["calibrated"]["seen_offset"] >= 0
    assert saved["calibrated"]["metrics"]["num_pixels"] == saved["all_labels"]["metrics"]["num_pixels"]
    # without a fold there is nothing to calibrate: one clear error
    weights = str(trained_run / "model.safetensors")
    nofold = ["evaluate", "--model", weights, "--data.dataset", "synthetic_textures", "--eval.calibrate-seen"]
    assert main([*nofold, "--out", str(tmp_path / "x.json")]) == 2
    assert "calibrate_seen needs a zero-shot fold" in capsys.readouterr().err


# ---- round 3: lseg_nb's own errors and OS errors are one line; anything else is a bug with its traceback ----


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (KeyError("boom"), "KeyError: 'boom'"),
        (ValueError("deep"), "ValueError: deep"),
        (RuntimeError("x"), "RuntimeError: x"),
    ],
)
def test_a_genuine_bug_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys, error, shown):
    from lseg_nb.apps import cli

    def broken(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "models", broken)
    assert main(["models", "--x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and shown in err
    assert err[-1] == (
        "lseg-nb models: this is a bug in lseg_nb; please report it with the command and the traceback above: "
        "lseg-nb models --x"
    )


@pytest.mark.parametrize(
    "error",
    [
        lambda: __import__("lseg_nb.utils.errors", fromlist=["InputError"]).InputError("bad value"),
        lambda: __import__("lseg_nb.config", fromlist=["ConfigError"]).ConfigError("bad value"),
        lambda: PermissionError("bad value"),
    ],
    ids=["InputError", "ConfigError", "OSError"],
)
def test_lseg_nb_errors_and_os_errors_are_one_line(monkeypatch, capsys, error):
    from lseg_nb.apps import cli

    def fails(args):
        raise error()

    monkeypatch.setitem(cli.COMMANDS, "models", fails)
    assert main(["models"]) == 2
    assert _error_line(capsys) == "lseg-nb models: error: bad value"


def _press_ctrl_c(*args, **kwargs):
    """What Ctrl-C does in the middle of the work: a real SIGINT to this process."""
    import signal
    import time

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # interrupted by the signal
    raise AssertionError("SIGINT was not delivered")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_ctrl_c_during_evaluate_and_predict_is_one_line_exit_130(
    command, tiny_run, tmp_path, monkeypatch, capsys
):
    from lseg_nb.apps import predict
    from lseg_nb.engine import evaluate

    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    # the command line imports these modules when a command runs (lazy_module): patch where they live
    where = {"evaluate": (evaluate, "evaluate_run"), "predict": (predict, "predict_image")}[command]
    monkeypatch.setattr(*where, _press_ctrl_c)
    args = {
        "evaluate": ["evaluate", "--run", str(tiny_run), "--out", str(tmp_path / "e.json")],
        "predict": ["predict", "--weights", str(tiny_run), "--image", str(image), "--labels", "a", "b"],
    }[command]
    try:
        code = main(args)
    except KeyboardInterrupt:  # the old behaviour: a traceback
        code = "KeyboardInterrupt escaped"
    assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lseg-nb {command}: interrupted (Ctrl-C); nothing more was written"]
    assert not (tmp_path / "e.json").exists()


def test_file_names_that_are_not_utf8_work_and_print(tiny_run, synth_root, tmp_path, capsys):
    import shutil

    odd = tmp_path / os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not valid UTF-8
    run = odd / "run"
    shutil.copytree(tiny_run, run)
    image = odd / os.fsdecode(b"ph\xf6to.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    out = odd / os.fsdecode(b"\xe9.png")
    assert (
        main(
            ["predict", "--weights", str(run), "--image", str(image), "--labels", "a", "b", "--out", str(out)]
        )
        == 0
    )
    assert out.stat().st_size > 0 and "caf\\udce9" in capsys.readouterr().out
    assert main(["predict", "--weights", str(run), "--image", str(odd / "missing.png"), "--labels", "a"]) == 2
    assert "caf\\udce9/missing.png does not exist" in _error_line(capsys)
    data = odd / "synth"
    shutil.copytree(synth_root, data)
    trained = odd / "trained"
    args = ["train", "--run-dir", str(trained), "--steps", "1", "--data.data-root", str(data), *TINY]
    assert main(args) == 0
    assert (trained / "model.safetensors").is_file() and (trained / "loss_curve.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--run", str(trained), "--data.max-images", "1", "--examples", "1"]) == 0
    assert len(list(trained.glob("eval_*_first1_examples.png"))) == 1


def test_recipes_one_line_each_and_one_with_its_notes(capsys):
    from lseg_nb.config import RECIPE_NOTES, list_recipes

    assert main(["recipes"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == len(list_recipes()) + 1 and lines[0].startswith("demo_msrc_v2")
    assert main(["recipes", "lseg_vitl16_coco_stuff171"]) == 0
    out = capsys.readouterr().out
    assert (
        "catseg_coco_stuff" in out
        and " ".join(out.split()).count(RECIPE_NOTES["lseg_vitl16_coco_stuff171"][:60]) == 1
    )
    assert main(["recipes", "--help"]) == 0 and "usage: lseg-nb recipes" in capsys.readouterr().out
    assert main(["recipes", "nope"]) == 2


def test_models_json_and_help(capsys):
    assert main(["models", "lseg_small_cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["backbone"] == "resnet18"
    assert main(["models", "--json"]) == 0 and "lseg_rn101" in json.loads(capsys.readouterr().out)
    assert main(["models", "--help"]) == 0 and "usage: lseg-nb models" in capsys.readouterr().out
    assert main(["models", "nope"]) == 2


def test_calibrate_seen_reports_what_its_fit_cost(tiny_run, tmp_path, capsys):
    """The validation fit of --eval.calibrate-seen is a whole extra pass: the table says what it was fitted on
    and how long it took (it used to be silent)."""
    out_file = tmp_path / "e.json"
    args = ["--eval.calibrate-seen", "--data.max-images", "2", "--examples", "0", "--out", str(out_file)]
    assert main(["evaluate", "--run", str(tiny_run), *args]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "seen-bias offset" in ln]
    assert len(lines) == 1, lines
    pattern = r"note: seen-bias offset \S+ fitted on 2 validation images \(81 offsets, one inference pass\) in \d+\.\d s"
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert "calibrated" in json.loads(out_file.read_text())["settings"]


def test_a_dataset_that_is_not_found_names_the_real_flag(tmp_path, monkeypatch, capsys):
    """train/evaluate spell the data root --data.data-root; the hint used to say --data-root (demo's flag)."""
    monkeypatch.setenv("LSEG_NB_SHARED", str(tmp_path / "shared"))
    monkeypatch.delenv("LSEG_NB_DATA", raising=False)
    monkeypatch.setenv("LSEG_NB_CACHE", str(tmp_path / "cache"))
    code = main(["train", "--run-dir", str(tmp_path / "r"), "--data.dataset", "msrc_v2", "--no-progress"])
    assert code == 2
    err = _error_line(capsys)
    assert "dataset 'msrc_v2' not found" in err and "Pass --data.data-root PATH (lseg-nb train" in err
