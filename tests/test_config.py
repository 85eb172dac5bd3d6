"""Config dataclasses: JSON round trip and field-naming errors."""

from __future__ import annotations

import json

import pytest

from lseg_nb.config import ConfigError, ModelConfig, TrainConfig, from_dict, load_config, save_json, to_dict
from lseg_nb.models import MODEL_CONFIGS


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_model_configs_round_trip(name):
    cfg = MODEL_CONFIGS[name]
    assert from_dict(ModelConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_train_config_round_trips_through_files(tmp_path):
    cfg = TrainConfig(steps=7, optimizer="sgd")
    save_json(cfg, tmp_path / "c.json")
    assert load_config(TrainConfig, tmp_path / "c.json") == cfg
    (tmp_path / "c.yaml").write_text("steps: 9\ndata:\n  fold: 2\n")
    loaded = load_config(TrainConfig, tmp_path / "c.yaml")
    assert loaded.steps == 9 and loaded.data.fold == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"stepz": 3}, "stepz"),
        ({"optimizer": "lion"}, "TrainConfig.optimizer"),
        ({"model": {"hooks": "5,11"}}, "TrainConfig.model.hooks"),
        ({"data": {"fold": "one"}}, "TrainConfig.data.fold"),
        ({"steps": True}, "TrainConfig.steps"),
    ],
)
def test_bad_fields_are_named(data, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        from_dict(TrainConfig, data)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(TrainConfig, tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        load_config(TrainConfig, tmp_path / "bad.json")
