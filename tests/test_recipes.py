"""Named recipes (lseg_nb/config/recipes.py): JSON round trip, ``lseg-nb train --preset NAME --dry-run``, the
official zero-shot hyper-parameters and step counts, the poly horizon and the episodic-protocol checks."""

from __future__ import annotations

import dataclasses
import json

import pytest
from torch.utils.data.distributed import DistributedSampler

from lseg_nb.apps.cli import main
from lseg_nb.config import (
    PUBLISHED_MIOU,
    RECIPE_NOTES,
    RECIPES,
    ConfigError,
    DataConfig,
    EvalConfig,
    TrainConfig,
    from_dict,
    get_recipe,
    steps_for_epochs,
    to_dict,
)
from lseg_nb.data.experiment import make_experiment
from lseg_nb.engine.train import lr_factor

ZERO_SHOT = sorted(n for n, c in RECIPES.items() if c.eval.protocol == "episodic")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_round_trips_through_json_and_has_notes(name):
    cfg = RECIPES[name]
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert RECIPE_NOTES[name].strip()


def test_dry_run_prints_every_recipe_with_flags_applied_and_trains_nothing(tmp_path, capsys):
    for name in sorted(RECIPES):
        run_dir = tmp_path / name
        args = [
            "train",
            "--preset",
            name,
            "--dry-run",
            "--no-data-check",
            "--steps",
            "3",
            "--run-dir",
            str(run_dir),
        ]
        assert main([*args, "--data.data-root", str(tmp_path / "data")]) == 0, name
        printed = from_dict(TrainConfig, json.loads(capsys.readouterr().out))
        data = dataclasses.replace(get_recipe(name).data, data_root=str(tmp_path / "data"))
        expected = get_recipe(name, steps=3, run_dir=str(run_dir), data=data)
        assert printed == expected, name
        assert not run_dir.exists()


def test_zero_shot_recipes_are_the_official_set_up():
    assert ZERO_SHOT == sorted(
        [f"lseg_rn101_pascal5i_fold{f}" for f in range(4)]
        + [f"lseg_rn101_coco20i_fold{f}" for f in range(4)]
        + ["lseg_rn101_fss1000", "lseg_vitl16_fss1000"]
    )
    for name in ZERO_SHOT:
        cfg = RECIPES[name]
        assert cfg.effective_lr == pytest.approx(0.004 / 16 * 20) == pytest.approx(0.005)
        assert (cfg.batch_size, cfg.grad_accum, cfg.optimizer, cfg.schedule) == (20, 2, "sgd", "poly")
        assert (cfg.momentum, cfg.weight_decay, cfg.no_decay_norm_bias, cfg.poly_power) == (
            0.9,
            1e-4,
            False,
            0.9,
        )
        assert (cfg.param_groups, cfg.decoder_lr_mult, cfg.amp, cfg.sync_bn) == (
            "official",
            10.0,
            "none",
            True,
        )
        assert (cfg.loss, cfg.unseen_pixels) == ("binary", "others")
        d = cfg.data
        assert (d.square_resize, d.scale_range, d.flip, d.fold is not None) == (True, (1.0, 1.0), False, True)
        assert (
            cfg.model.crop_size == 480
            and cfg.model.text.name == "ViT-B-32"
            and cfg.model.text.pretrained == "openai"
        )
        if cfg.model.backbone.startswith("resnet101"):
            assert cfg.model.backbone == "resnet101.tv_in1k"  # torchvision's ImageNet weights
            assert cfg.model.mean == (0.485, 0.456, 0.406) and cfg.model.std == (0.229, 0.224, 0.225)
        else:
            assert cfg.model.backbone == "vit_large_patch16_384"
            assert cfg.model.mean == cfg.model.std == (0.5, 0.5, 0.5)
        assert cfg.ignore_index >= len(make_experiment(dataclass_root(d)).labels.seen)
        assert "assuming 8 processes" in RECIPE_NOTES[name] and "Remaining differences" in RECIPE_NOTES[name]
        assert f"= {cfg.steps}," in RECIPE_NOTES[name]


def dataclass_root(d: DataConfig) -> DataConfig:
    return dataclasses.replace(d, data_root="/nonexistent")  # resolving labels reads no file


def test_zero_shot_step_counts_by_hand():
    # 4 epochs of 2 x episodes items on 8 processes: floor(floor(2N / 8) / 20) batches per epoch, 2 per step
    expected = {
        0: 4 * 142 // 2,
        1: 4 * 128 // 2,
        2: 4 * 97 // 2,
        3: 4 * 144 // 2,
    }  # N = 11394/10255/7797/11594
    for f, steps in expected.items():
        cfg = RECIPES[f"lseg_rn101_pascal5i_fold{f}"]
        assert cfg.steps == steps and cfg.schedule_steps == steps * 50  # 200 of 4 epochs
    assert RECIPES["lseg_rn101_coco20i_fold0"].steps == 4 * 1026 // 2  # the assumed 82081 images
    for name in ("lseg_rn101_fss1000", "lseg_vitl16_fss1000"):
        assert RECIPES[name].steps == 200 * 65 // 2 and RECIPES[name].schedule_steps is None  # 5200 episodes
    assert (
        PUBLISHED_MIOU["lseg_rn101_pascal5i_fold0"] == 52.8 and PUBLISHED_MIOU["lseg_vitl16_fss1000"] == 87.8
    )
    assert set(PUBLISHED_MIOU) == set(ZERO_SHOT)


@pytest.mark.parametrize(("items", "processes"), [(22788, 8), (10400, 8), (1001, 3), (57, 1)])
def test_steps_for_epochs_counts_what_the_loader_serves(items, processes):
    per_process = len(DistributedSampler(range(items), processes, 0, shuffle=True, drop_last=True))
    batches = per_process // 20  # the training loop keeps whole batches only
    assert steps_for_epochs(items, 4, 20, 2, processes) == 4 * batches // 2
    with pytest.raises(ValueError, match="positive"):
        steps_for_epochs(items, 0, 20)


def test_poly_horizon_reproduces_the_official_four_of_two_hundred_epochs():
    cfg = RECIPES["lseg_rn101_pascal5i_fold0"]
    last = cfg.steps - 1
    assert lr_factor(last, cfg) == pytest.approx((1 - last / cfg.schedule_steps) ** 0.9)
    assert lr_factor(last, cfg) > 0.98  # official: (1 - 3/200)^0.9 = 0.986 in the last of the 4 epochs
    plain = get_recipe("lseg_rn101_pascal5i_fold0", schedule_steps=None)
    assert lr_factor(last, plain) < 0.01
    with pytest.raises(ConfigError, match="schedule_steps"):
        get_recipe("lseg_rn101_pascal5i_fold0", schedule_steps=10)


def test_episodic_protocol_needs_an_episodic_benchmark_and_no_periodic_evaluation():
    with pytest.raises(ConfigError, match=r"eval\.protocol: 'episodic' scores a fold of"):
        TrainConfig(eval=EvalConfig(protocol="episodic"))
    with pytest.raises(ConfigError, match="eval_every"):
        get_recipe("lseg_rn101_fss1000", eval_every=100)
    assert EvalConfig(protocol="episodic").name == "episodic(['others', class], 480x480)"


def test_ade20k_recipe_resolves_to_the_ade20k_adapter():
    cfg = RECIPES["lseg_vitl16_ade20k"]
    with pytest.raises(
        ValueError, match=r"data\.data_root: ADE20K-150 .*needs the folder that `lseg-nb prepare ade20k150"
    ):
        make_experiment(cfg.data)
    exp = make_experiment(dataclass_root(cfg.data))
    assert exp.benchmark is not None and exp.manifest.name == "ade20k150"
    assert len(exp.labels.seen) == 150 and exp.labels.unseen == () and exp.ignore_index == 255
    assert exp.labels.class_names[0] == "wall" and "ade20k150" in exp.manifest_hashes
