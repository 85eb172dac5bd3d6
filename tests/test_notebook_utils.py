"""Notebook helpers: small configs, ensure/load runs, run-folder listing, tables, label parsing, display."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
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


# --- notebook tables -------------------------------------------------------------------------------------------


def _frame():
    import numpy as np
    import pandas as pd

    rows = [
        {"setting": "all 16 labels", "mIoU": 41.25, "pixels": 1200, "ece": 0.0412, "note": "x" * 120},
        {"setting": "  chance: uniform guess over 16 labels", "mIoU": 6.3, "pixels": None, "ece": np.nan},
    ]
    return pd.DataFrame(rows)  # pandas turns the int column with a missing value into 1200.0 / NaN


def test_notebook_table_formats_missing_values_units_integers_and_chance_rows():
    from lseg_nb.apps.notebook import notebook_table

    t = notebook_table(_frame(), percents=["mIoU"], fractions=["ece"])
    assert t.columns == ("setting", "mIoU (%)", "pixels", "ece (%)", "note")  # no index column, units named
    assert t.rows[0] == ("all 16 labels", "41.2", "1200", "4.1", "x" * 120)  # whole text, int as int
    assert t.rows[1] == ("chance: uniform guess over 16 labels", "6.3", "-", "-", "-")  # '-', not NaN / None
    assert t.indented == (False, True)
    page = t._repr_html_()
    assert "NaN" not in page and "nan" not in page and "x" * 120 in page and "<th" in page
    cells = page.split("<tr")
    assert "padding-left" in cells[-1] and "padding-left" not in cells[-2]  # the chance row is drawn indented
    assert "  chance: uniform guess" in repr(t) and "NaN" not in repr(t)  # the text form indents it too


def test_notebook_table_from_rows_groups_renames_and_refuses_unknown_columns():
    from lseg_nb.apps.notebook import notebook_table

    rows = [
        {"model": "a", "setting": "all", "top1": 0.5, "steps": 3},
        {"model": "a", "setting": "  chance", "top1": 0.125},
        {"model": "b", "setting": "all", "top1": 1.0, "steps": 4, "seen": True},
    ]
    t = notebook_table(rows, fractions=["top1"], group="model", rename={"top1": "top-1"}, decimals={"x": 1})
    assert t.columns == ("model", "setting", "top-1 (%)", "steps", "seen")
    assert [r[0] for r in t.rows] == ["a", "", "b"] and t.indented == (False, True, False) and t.label == 1
    assert [r[2] for r in t.rows] == ["50.0", "12.5", "100.0"] and t.rows[2][3:] == ("4", "yes")
    with pytest.raises(KeyError, match="no column 'iou'"):
        notebook_table(rows, fractions=["iou"])
    assert notebook_table([{"x": 0.12345}], decimals=3).rows == (("0.123",),)


def test_per_class_iou_chart_is_in_percent_and_its_key_covers_no_bar_or_value():
    """Notebook 02's charts: with IoUs near 1 every bar reaches the right edge, where the key used to sit."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from lseg_nb.viz.segmentation import plot_per_class_iou

    fig = plot_per_class_iou([1.0, None, 0.995, 0.9, 0.97], list("abcde"), unseen=[1, 3])
    ax = fig.axes[0]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    key = ax.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in ax.patches]
    values = [t.get_window_extent(renderer) for t in ax.texts]
    assert [t.get_text() for t in ax.texts] == ["100.0", "n/a", "99.5", "90.0", "97.0"]
    assert ax.get_xlabel() == "IoU (%)" and len(bars) == 5
    assert not any(key.overlaps(b) for b in bars + values)
    plt.close(fig)


def test_neighbour_table_names_its_two_vocabularies_and_shows_shares_in_percent():
    from lseg_nb.apps.notebook import neighbour_table
    from lseg_nb.diagnostics import neighbour_analysis

    g = torch.Generator().manual_seed(0)
    text = torch.randn(3, 8, generator=g)
    lab = torch.arange(3).repeat_interleave(20)
    emb = text[lab] + 0.8 * torch.randn(60, 8, generator=g)
    extra = torch.randn(2, 8, generator=g)
    report = neighbour_analysis(
        emb, lab, text, ["a", "b", "c"], [0, 1], [2], distractor_emb=extra, distractor_names=["x", "y"]
    )
    t = neighbour_table(report)
    assert t.caption == "all 5 texts = 3 class names + 2 distractors"
    assert "top-1 among all 5 texts (%)" in t.columns and "mistaken among 3 class names (%)" in t.columns
    row = dict(zip(t.columns, t.rows[2]))
    c = report["c"]
    assert row["pixels"] == "20" and row["top-1 among all 5 texts (%)"] == f"{100 * c.top1:.1f}"
    assert row["its share of the mistakes (%)"] == (
        "-" if np.isnan(c.confused_share) else f"{100 * c.confused_share:.1f}"
    )
    assert dict(zip(t.columns, t.rows[0]))["most confused seen name"] == "-"  # seen classes have none


def test_calibration_table_shows_fractions_in_percent_and_counts_as_integers():
    from lseg_nb.apps.notebook import calibration_table
    from lseg_nb.diagnostics import temperature_scaling

    g = torch.Generator().manual_seed(0)
    logits, target = 5 * torch.randn(200, 4, generator=g), torch.randint(0, 4, (200,), generator=g)
    logits[torch.arange(200), target] += 4  # better than chance, so the fitted T is finite
    scaling = temperature_scaling(logits, target, class_groups={"seen": [0, 1], "unseen": [2, 3]})
    t = calibration_table(scaling)
    assert t.columns[:5] == ("stage", "temperature", "group", "count", "ECE (%)")
    assert {"NLL", "Brier", "accuracy (%)", "mean confidence (%)"} <= set(t.columns)
    first = dict(zip(t.columns, t.rows[0]))
    assert first["count"] == "200" and first["temperature"] == "1.00"
    assert first["ECE (%)"] == f"{100 * scaling.before['all'].ece:.1f}"
