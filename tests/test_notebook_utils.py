"""Notebook helpers: small configs, ensure/load runs, run-folder listing, tables, label parsing, display."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from lseg_nb.apps.notebook import (
    distractor_words,
    ensure_run,
    figure_dir,
    load_run,
    notebook_config,
    parse_labels,
    run_files,
    run_labels,
    show,
)
from lseg_nb.apps.pipeline import demo_config
from lseg_nb.config import ConfigError, DataConfig, TextEncoderConfig, TrainConfig
from lseg_nb.models.lseg import get_config


def test_notebook_config_defaults_are_the_demo_run():
    assert notebook_config("runs/x") == demo_config(run_dir="runs/x")


def test_notebook_config_knobs_and_short_runs_log_every_step():
    cfg = notebook_config("r", steps=3, max_images=8, batch_size=4, fold=1, amp="bf16")
    assert (cfg.steps, cfg.batch_size, cfg.data.max_images, cfg.data.fold, cfg.amp) == (3, 4, 8, 1, "bf16")
    assert cfg.log_every == 1
    with pytest.raises(ConfigError, match="learning_rate"):
        notebook_config("r", learning_rate=0.1)


def _tiny_cfg(run_dir) -> TrainConfig:
    model = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    data = DataConfig(max_images=2)
    return TrainConfig(model=model, data=data, run_dir="ignored", steps=1, batch_size=2, progress=False)


def test_ensure_run_trains_once_then_reuses(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert ensure_run(run_dir, _tiny_cfg(tmp_path)) == run_dir
    out = capsys.readouterr().out
    assert "training 1 steps" in out and "training finished at step 1 of 1" in out
    assert (run_dir / "loss_curve.png").stat().st_size > 0
    weights = run_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert ensure_run(run_dir, _tiny_cfg(tmp_path)) == run_dir
    assert "using the finished run" in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == mtime

    run = load_run(run_dir, device="cpu")
    assert not run.model.training and run.config.steps == 1 and run.config.run_dir == str(run_dir)
    assert run.labels.unseen_names == ["red stripes", "green dots", "blue checks", "yellow plain"]
    assert sorted(run.seen + run.unseen) == list(range(16)) and len(run.class_names) == 16
    assert run_labels(run_dir) == run.labels
    image, label = run.dataset("test", max_images=2)[1]
    assert (
        len(run.dataset("test", max_images=2)) == 2 and image.shape == (3, 96, 96) and label.shape == (96, 96)
    )

    assert distractor_words(run) == list(run.distractors) and "zebra" in run.distractors
    assert distractor_words(run, "zebra, red stripes, sky") == ["zebra", "sky"]  # class names already compete
    assert distractor_words(run, "") == [] and distractor_words(run, ["cat"]) == ["cat"]
    rows = {r["file"]: r for r in run_files(run_dir)}
    assert {
        "config.json",
        "environment.json",
        "metrics.jsonl",
        "checkpoints/last.pt",
        "model.safetensors",
    } <= set(rows)
    assert rows["checkpoints/last.pt"]["contents"].startswith("latest training state")
    assert rows["model.safetensors"]["size"].endswith("MiB")


def test_ensure_run_skips_training_when_weights_exist(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not read")
    assert ensure_run(tmp_path, verbose=False) == tmp_path
    assert not (tmp_path / "config.json").exists()


def test_ensure_run_rejects_cfg_plus_keywords(tmp_path):
    with pytest.raises(TypeError, match="either cfg"):
        ensure_run(tmp_path, _tiny_cfg(tmp_path), steps=2)


def test_load_run_and_run_files_name_the_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match="not a run folder"):
        run_labels(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_files(tmp_path / "nope")


def test_run_files_sizes(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x" * 10)
    (tmp_path / "b.bin").write_bytes(b"x" * 1536)
    assert [(r["file"], r["size"]) for r in run_files(tmp_path)] == [("a.txt", "10 B"), ("b.bin", "1.5 KiB")]


def test_parse_labels_strips_and_refuses_blank_or_duplicate_labels():
    assert parse_labels(" red, stripes ,grass") == ["red", "stripes", "grass"]
    assert parse_labels("red, stripes,") == ["red", "stripes"]  # a trailing comma while typing
    with pytest.raises(ValueError, match=r"entry 2 of \['cow ', '', 'sky'\] is empty"):
        parse_labels(["cow ", "", "sky"])
    with pytest.raises(ValueError, match="'red' is given twice"):
        parse_labels(" red, stripes, red ")
    with pytest.raises(ValueError, match="entry 3 of 'red, sky, ,' is empty"):
        parse_labels("red, sky, ,")
    with pytest.raises(ValueError, match="no labels"):
        parse_labels(" , ,")


def test_show_is_a_no_op_outside_ipython():
    fig = plt.figure()
    assert show(fig) is None
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


def test_show_saves_pngs_into_the_run_folder_also_outside_ipython(tmp_path):
    folder = figure_dir(tmp_path, "02_zero_shot_evaluation")
    assert folder == tmp_path / "figures" / "02_zero_shot_evaluation"
    one, a, b = Figure(), Figure(), Figure()
    for fig in (one, a, b):
        fig.subplots().plot([0, 1])
    show(one, save=folder / "examples")
    show(a, b, save=folder / "confidence map: image 3")
    names = sorted(p.name for p in folder.iterdir())
    stems = ["confidence_map_image_3_1", "confidence_map_image_3_2", "examples"]
    assert names == sorted(f"{s}.{x}" for s in stems for x in ("pdf", "png", "svg"))  # a paper's formats too
    assert (folder / "examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_renders_png_once_in_ipython(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.display_formatter.formatters["image/png"].pop(Figure, None)
        fig = plt.figure()
        fig.subplots().plot([0, 1])
        show(fig)
        assert not plt.fignum_exists(fig.number), "pyplot figures are closed so the inline backend skips them"
        other = Figure()
        other.subplots().plot([1, 0])
        data, _ = shell.display_formatter.format(other)
        assert data["image/png"], "figures render as PNG even under the Agg backend"
    finally:
        InteractiveShell.clear_instance()
