"""End-to-end jobs: the demo report on synthetic data and an integration run on a few MSRC-v2 images."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lseg_nb.apps.cli import main
from lseg_nb.apps.pipeline import demo_config, run_demo, train_run
from lseg_nb.config import ConfigError, DataConfig, TextEncoderConfig, TrainConfig, get_recipe
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.models.lseg import get_config


def _check_report(report, n_unseen):
    metrics = json.loads((report / "metrics.json").read_text())
    assert len(metrics["unseen_classes"]) == n_unseen
    general = metrics["settings"]["all_labels"]["metrics"]
    assert general["miou"] is not None and 0 <= general["miou"] <= 1
    assert "unseen_only" in metrics["settings"] and "calibrated" in metrics["settings"]
    for name in ("examples.png", "per_class_iou.png", "loss_curve.png", "report.md", "../loss_curve.png"):
        assert (report / name).stat().st_size > 0
    return metrics


def test_demo_writes_a_report_on_synthetic_data(tmp_path):
    root = generate_synthetic(tmp_path / "synth", n_train=8, n_val=2, n_test=3, size=64)
    cfg = demo_config(run_dir=str(tmp_path / "demo"), steps=2, data_root=str(root))
    report = run_demo(dataclasses.replace(cfg, progress=False))
    metrics = _check_report(report, 4)
    assert metrics["num_images"] == 3
    md = (report / "report.md").read_text()
    assert "red stripes" in md and "| unseen 4 labels only (ZS3Net/SPNet-style) |" in md
    # the trained run answers free-form label queries on an image file
    out = tmp_path / "pred.png"
    image = root / "images" / "test_0000.png"
    args = [
        "predict",
        "--weights",
        str(tmp_path / "demo"),
        "--image",
        str(image),
        "--labels",
        "red",
        "blue",
        "--out",
        str(out),
        "--eval.amp",
        "bf16",
    ]
    assert main(args) == 0
    assert out.stat().st_size > 0
    # execution options on the command line: bf16 is named in the protocol, the window batch changes nothing
    evaluate = [
        "evaluate",
        "--run",
        str(tmp_path / "demo"),
        "--data.max-images",
        "1",
        "--eval.mode",
        "sliding",
    ]
    for extra, name in (([], "a"), (["--eval.window-batch", "1"], "b"), (["--eval.amp", "bf16"], "c")):
        assert main([*evaluate, *extra, "--out", str(tmp_path / f"{name}.json")]) == 0
    a, b, c = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "abc")
    assert (
        a["settings"]["all_labels"]["confusion"] == b["settings"]["all_labels"]["confusion"]
        and a["protocol"] == b["protocol"] == "sliding(stride 0.67, window 96)"
    )
    assert c["protocol"] == "sliding(stride 0.67, window 96), bf16 autocast"


@pytest.mark.slow
def test_msrc_integration_train_demo_and_evaluate(msrc_root, tmp_path, capsys):
    run = tmp_path / "msrc"
    cfg = demo_config("msrc_v2", str(run), steps=2, data_root=str(msrc_root), fold=0, max_images=8)
    report = run_demo(dataclasses.replace(cfg, progress=False))
    metrics = _check_report(report, 6)
    assert metrics["unseen_classes"][0] == "building"
    out = tmp_path / "eval.json"
    assert (
        main(["evaluate", "--run", str(run), "--split", "val", "--data.max-images", "2", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["num_images"] == 2


@pytest.mark.parametrize("steps", [0, -3])
def test_demo_refuses_non_positive_steps_before_any_work(tmp_path, steps):
    # demo_config(steps=0) used to fall back to the recipe's 400 steps; -3 trained nothing and reported 0.0
    with pytest.raises(ConfigError, match=f"steps: must be >= 1, got {steps}"):
        run_demo(demo_config(run_dir=str(tmp_path / "demo"), steps=steps))
    assert not (tmp_path / "demo").exists()
    assert demo_config(steps=None).steps == get_recipe("demo_synthetic").steps
    assert demo_config("msrc_v2", steps=None).steps == get_recipe("demo_msrc_v2").steps
    assert demo_config(steps=7).steps == 7


def test_demo_folds_default_to_the_recipe_and_can_be_chosen():
    """The MSRC-v2 demo trains the `neighbours` fold (each unseen class keeps a seen neighbour; fold 0 holds cow,
    horse and sheep out together and its unseen-only score was below chance); --fold still picks any fold."""
    msrc = demo_config("msrc_v2")
    assert msrc.data.fold == 4 == get_recipe("demo_msrc_v2").data.fold and msrc.steps == 900
    assert demo_config().data.fold == 0
    assert (
        demo_config("msrc_v2", fold=1).data.fold == 1 and demo_config("msrc_v2", fold=None).data.fold is None
    )


def _tiny(run_dir, steps: int) -> TrainConfig:
    model = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    return TrainConfig(
        model=model,
        data=DataConfig(max_images=2),
        run_dir=str(run_dir),
        steps=steps,
        batch_size=2,
        log_every=1,
        progress=False,
    )


def test_train_run_summarises_a_paused_then_resumed_run(tmp_path):
    run = tmp_path / "run with space"
    paused = train_run(_tiny(run, 3), stop_at=2)
    assert (paused.step, paused.start_step, paused.total_steps, paused.finished) == (2, 0, 3, False)
    log = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert paused.final_loss == log[-1]["loss"] and paused.final_loss_step == 2
    text = paused.text().splitlines()
    assert text[0].startswith("training paused at step 2 of 3: 2 steps in ")
    assert text[-1] == f"  lseg-nb train --config '{run}/config.json'"  # quoted for the shell
    assert not (run / "model.safetensors").exists()

    done = train_run(_tiny(run, 3))
    assert (done.step, done.start_step, done.finished, done.final_loss_step) == (3, 2, True, 3)
    assert (
        done.text()
        .splitlines()[0]
        .startswith("training finished at step 3 of 3: 1 steps (resumed at step 2)")
    )
    assert f"  lseg-nb evaluate --run '{run}'" in done.text().splitlines()
    assert done.loss_curve == run / "loss_curve.png" and done.loss_curve.stat().st_size > 0
