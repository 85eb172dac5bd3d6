"""The command line's start: ``--help`` of every command, ``models`` and ``recipes`` without torch; plain-text
help; unknown flags named with the real ones they resemble."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lseg_nb.apps.cli import COMMANDS, main
from lseg_nb.apps.cli_args import known_flags, plain_text, unknown_flags_message
from lseg_nb.apps.cli_eval import EvaluateArgs
from lseg_nb.config import MODEL_CONFIGS, TrainConfig, to_dict

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "open_clip", "torchvision", "matplotlib")
# `benchmark --help` validates the benchmark's name in the data layer, which imports torch
LIGHT = [
    ["--help"],
    ["models"],
    ["models", "--json"],
    ["models", "--help"],
    ["recipes"],
    ["recipes", "--help"],
]
LIGHT += [[cmd, "--help"] for cmd in COMMANDS if cmd != "benchmark"]

_PROBE = """
import json, sys
from lseg_nb.apps.cli import main
first = {}
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as e:  # tyro's --help
        code = e.code
    assert code in (0, None), (argv, code)
    for name in json.loads(sys.argv[2]):
        if name in sys.modules and name not in first:
            first[name] = argv
print(json.dumps(first))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}  # 120: one column of help boxes


def test_help_models_and_recipes_do_not_import_torch():
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(LIGHT), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {}, f"heavy modules imported (module: the first command that did): {loaded}"


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_every_command_takes_help(cmd, capsys):
    try:
        code = main([cmd, "--help"])
    except SystemExit as e:  # tyro prints the help and exits
        code = e.code
    assert code in (0, None)
    captured = capsys.readouterr()
    assert f"lseg-nb {cmd}" in captured.out and "error" not in captured.err


def test_models_json_is_every_named_config():
    done = subprocess.run(
        [sys.executable, "-m", "lseg_nb", "models", "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    configs = json.loads(done.stdout)
    assert list(configs) == list(MODEL_CONFIGS)
    assert configs["lseg_vitl16_384"] == to_dict(MODEL_CONFIGS["lseg_vitl16_384"])


def test_train_help_is_whole_plain_sentences():
    done = subprocess.run(
        [sys.executable, "-m", "lseg_nb", "train", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.replace("│", " ").split())
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    # DataConfig's description used to stop at "...ade20k150; see" (a line starting with a role ends it)
    assert "max_images: cap per split, for smoke runs." in text
    assert "data_root: dataset folder" in text


def test_plain_text_drops_roles_and_literals():
    doc = "Uses ``lr``; see\n    :mod:`lseg_nb.config.recipes` and :func:`~lseg_nb.engine.runs.load_model`."
    assert plain_text(doc) == "Uses lr; see\nlseg_nb.config.recipes and load_model."


def test_known_flags_spell_nested_fields_and_negations():
    flags = known_flags(TrainConfig)
    assert {"--steps", "--data.data-root", "--model.text.kind", "--data.flip", "--data.no-flip"} <= set(flags)
    assert "--data" not in flags and "--model.text" not in flags
    assert {"--run", "--data.fold", "--eval.calibrate-seen", "--per-class"} <= set(known_flags(EvaluateArgs))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("--data-root", "--data.data-root"),  # the example: a nested field typed flat
        ("--fold", "--data.fold"),
        ("--stepz", "--steps"),  # a typo
        ("--model.crop", "--model.crop-size"),
    ],
)
def test_unknown_flag_names_the_real_one(typed, meant):
    msg = unknown_flags_message([typed, "3", "--steps", "4"], known_flags(TrainConfig), "lseg-nb train")
    assert msg is not None and msg.startswith(f"unknown flag {typed} (did you mean {meant}")
    assert "`lseg-nb train --help` lists every flag" in msg


def test_known_flags_give_no_message():
    flags = known_flags(TrainConfig)
    assert unknown_flags_message(["--steps", "4", "--data.fold=1", "x"], flags, "lseg-nb train") is None


def test_unknown_flag_on_the_command_line_is_one_line_with_the_hint(capsys):
    assert main(["train", "--data-root", "/tmp/x", "--dry-run"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "lseg-nb train: error: unknown flag --data-root (did you mean --data.data-root?); "
        "`lseg-nb train --help` lists every flag"
    )
