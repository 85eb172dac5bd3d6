"""Named recipes are whole settings with one source of truth for the crop, and `train --dry-run` shows them."""

from __future__ import annotations

import json

import pytest

from lseg_nb.apps.cli import main, resolve_train_config
from lseg_nb.config import (
    OFFICIAL_EVAL,
    RECIPE_NOTES,
    RECIPES,
    ConfigError,
    TrainConfig,
    from_dict,
    get_recipe,
    list_recipes,
    save_json,
    to_dict,
)
from lseg_nb.data.experiment import make_experiment


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_round_trips_and_names_its_sources(name):
    cfg = get_recipe(name)
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert RECIPE_NOTES.get(name), f"recipe {name} must name its sources in RECIPE_NOTES"


def test_paper_recipe_sets_the_paper_crop_for_training_and_evaluation():
    cfg = get_recipe("lseg_vitl16_ade20k")
    # one field: training crop = evaluation window (the old preset trained ViT-L on 96 px crops)
    assert cfg.model.crop_size == 480 and "crop_size" not in to_dict(cfg.data)
    assert cfg.eval == OFFICIAL_EVAL and cfg.eval.base_size == 520 and cfg.eval.flip
    assert cfg.data.base_size == 520 and cfg.data.scale_range == (0.5, 2.0)
    assert (cfg.optimizer, cfg.param_groups, cfg.lr_rule, cfg.amp) == ("sgd", "official", "official", "none")
    assert cfg.effective_lr == pytest.approx(0.004 / 16 * cfg.batch_size)


def test_demo_recipe_trains_and_evaluates_on_the_same_crop(tmp_path):
    cfg = get_recipe("demo_synthetic", run_dir=str(tmp_path / "r"))
    exp = make_experiment(cfg.data)
    image, _ = exp.dataset("train", cfg.model, cfg.data, train=True)[0]
    assert tuple(image.shape[-2:]) == (cfg.model.crop_size, cfg.model.crop_size) == (96, 96)


def test_dry_run_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--preset", "lseg_vitl16_ade20k", "--dry-run", "--steps", "7", "--run-dir", str(run)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (
        printed["steps"] == 7 and printed["model"]["crop_size"] == 480 and printed["eval"]["base_size"] == 520
    )
    assert not run.exists()
    cfg_file = tmp_path / "c.json"
    save_json(get_recipe("demo_synthetic"), cfg_file)
    assert main(["train", "--config", str(cfg_file), "--dry-run", "--lr", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["lr"] == 0.5


def test_preset_and_config_together_or_unknown_preset_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        resolve_train_config(["--config", "x.json", "--preset", "demo_synthetic"])
    with pytest.raises(ConfigError, match="named recipes"):
        resolve_train_config(["--preset", "lseg_vitl16_384"])  # a model name is not a whole recipe
    assert "demo_synthetic" in list_recipes()
