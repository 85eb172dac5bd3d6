"""tyro's error boxes become one line naming the flag, whichever way the terminal draws them."""

from __future__ import annotations

import pytest

from lseg_nb.apps.cli_args import _tyro_message, parse_args
from lseg_nb.config import ConfigError, TrainConfig

# As drawn on a UTF-8 terminal ...
UNICODE = """\
╭─ Value error ────────────────────────────────────────────────────────────────╮
│ Error parsing data: data.num_workers: must be >= 0 (0 = load in the main     │
│ process) or None (automatic), got -1                                         │
│ ──────────────────────────────────────────────────────────────────────────── │
│ For full helptext, see lseg-nb train --help                                  │
╰──────────────────────────────────────────────────────────────────────────────╯
"""
# ... and without one (captured output, e.g. under pytest or in a CI log).
PLAIN = """\
 Value error
 ------------------------------------------------------------------------------
  Error parsing --model.features: invalid literal for int() with base 10: 'abc'
  ------------------------------------------------------------------------------
  Argument helptext:
      --model.features INT
"""


def test_both_box_styles_become_one_line():
    expected = "--data.num-workers: must be >= 0 (0 = load in the main process) or None (automatic), got -1"
    assert _tyro_message(UNICODE, TrainConfig) == expected
    assert (
        _tyro_message(PLAIN, TrainConfig) == "--model.features: invalid literal for int() with base 10: 'abc'"
    )


@pytest.mark.parametrize(
    ("where", "field", "flag"),
    [
        ("TrainConfig", "log_every", "--log-every"),  # a top-level field
        ("model", "model.crop_size", "--model.crop-size"),  # a nested check naming its own prefix
        ("model", "logit_scale", "--model.logit-scale"),  # ... or only the field
        ("model.text", "text.dim", "--model.text.dim"),  # overlapping prefixes are merged
    ],
)
def test_config_fields_are_spelled_as_flags(where, field, flag):
    text = f"╭─ Value error ─╮\n│ Error parsing {where}: {field}: must be >= 1 │\n╰──╯\n"
    assert _tyro_message(text, TrainConfig) == f"{flag}: must be >= 1"


def test_parse_args_raises_one_config_error(capsys):
    with pytest.raises(ConfigError, match=r"^--model\.crop-size: must be >= 1, got 0$"):
        parse_args(TrainConfig, ["--model.crop-size", "0"], "lseg-nb train")
    assert capsys.readouterr().err == ""  # tyro's box is not printed as well
    assert parse_args(TrainConfig, ["--steps", "5"], "lseg-nb train").steps == 5
