"""Config dataclasses: JSON round trip, field-naming errors, validation on creation, strict config files."""

from __future__ import annotations

import json

import pytest

from lseg_nb.config import (
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_config,
    save_json,
    to_dict,
)
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
        ({"data": {"fold": 1.5}}, "TrainConfig.data.fold"),
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


# ---- every config validates itself: Python, files and CLI flags meet the same checks ----


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainConfig(optimizer="sgd", lr=float("nan")), "lr=nan is not a finite number"),
        (lambda: TrainConfig(lr=float("inf")), "lr=inf is not a finite number"),
        (lambda: TrainConfig(lr=0.0), "lr: must be a finite number > 0"),
        (lambda: TrainConfig(log_every=0), "log_every: must be >= 1, got 0"),
        (lambda: TrainConfig(steps=0), "steps: must be >= 1, got 0"),
        (lambda: TrainConfig(steps=-3), "steps: must be >= 1, got -3"),
        (lambda: TrainConfig(ignore_index=-1), "ignore_index: must be >= 0"),
        (lambda: TrainConfig(unseen_pixels="others"), "unseen_pixels: 'others' .* needs loss='binary'"),
        (
            lambda: ModelConfig(readout="bogus"),
            r"readout='bogus' is not one of \['ignore', 'add', 'project'\]",
        ),
        (lambda: ModelConfig(backbone="resnet50", readout="bogus"), "readout='bogus' is not one of"),
        (lambda: ModelConfig(features="abc"), "features='abc' is not an integer"),
        (lambda: ModelConfig(features=-8), "model.features: must be >= 1, got -8"),
        (lambda: ModelConfig(crop_size=0), "model.crop_size: must be >= 1, got 0"),
        (
            lambda: DataConfig(scale_range=(-1.0, 2.0)),
            r"data.scale_range: needs 0 < min <= max, got \(-1.0, 2.0\)",
        ),
        (lambda: DataConfig(num_workers=-1), "data.num_workers: must be >= 0"),
        (lambda: DataConfig(max_images=0), "data.max_images: must be >= 1"),
        (lambda: EvalConfig(stride_ratio=0.0), "eval.stride_ratio: needs 0 < ratio <= 1"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_invalid_values_in_a_file_name_the_file_and_field(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  features: -8\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: TrainConfig\.model: model\.features: must be >= 1"):
        load_config(TrainConfig, tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("name", "text"),
    [("c.json", '{"steps": 3, "lr": 0.1, "steps": 300}'), ("c.yaml", "steps: 3\nlr: 0.1\nsteps: 300\n")],
)
def test_duplicate_keys_in_config_files_are_refused(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=rf"{name.replace('.', '[.]')}: .*duplicate key 'steps'"):
        load_config(TrainConfig, tmp_path / name)


def test_yaml_tags_never_run_and_syntax_errors_name_the_file(tmp_path):
    target = tmp_path / "pwned"
    (tmp_path / "tag.yaml").write_text(f"run_dir: !!python/object/apply:os.mkdir ['{target}']\n")
    with pytest.raises(ConfigError, match=r"tag\.yaml: not a plain-data YAML file .*no !!python tags"):
        load_config(TrainConfig, tmp_path / "tag.yaml")
    assert not target.exists()
    (tmp_path / "syntax.yaml").write_text("steps: [3\nlr: 0.1\n")
    with pytest.raises(ConfigError, match=r"syntax\.yaml: not a plain-data YAML file"):
        load_config(TrainConfig, tmp_path / "syntax.yaml")


def _alias_bomb() -> str:
    """A YAML flow list of nested aliases (about 350 bytes) that expands to 9**9 = 387 million strings."""
    levels = "abcdefghi"
    items = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip(levels, levels[1:]):
        items.append(f"&{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"


def test_alias_bomb_as_steps_fails_fast_with_a_short_message(tmp_path):
    import time

    path = tmp_path / "run.yaml"
    path.write_text(f"steps: {_alias_bomb()}\n")
    assert path.stat().st_size < 400
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="run.yaml: .*expands to more than 100000 values") as e:
        load_config(TrainConfig, path)
    assert time.perf_counter() - t0 < 1.0 and len(str(e.value)) < 700


def test_small_aliases_still_work(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: &d {dataset: synthetic_textures, fold: 1}\nsteps: 5\n")
    assert load_config(TrainConfig, path).data.fold == 1


def test_type_errors_show_huge_values_shortened_in_bounded_time():
    import time

    bomb: list = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9  # what the alias bomb expands to, built in Python (no YAML cap in the way)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"steps: expected int, got \[\[\[") as e:
        from_dict(TrainConfig, {"steps": bomb})
    assert time.perf_counter() - t0 < 1.0 and len(str(e.value)) < 200
    with pytest.raises(ConfigError, match="is not an integer") as e:
        TrainConfig(steps=bomb)  # type: ignore[arg-type]
    assert len(str(e.value)) < 200
