"""End-to-end jobs: the demo report on synthetic data and an integration run on a few MSRC-v2 images."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lseg_nb.apps.cli import main
from lseg_nb.apps.pipeline import demo_config, run_demo
from lseg_nb.data.synthetic import generate_synthetic


def _check_report(report, n_unseen):
    metrics = json.loads((report / "metrics.json").read_text())
    assert len(metrics["unseen_classes"]) == n_unseen
    assert metrics["all_labels"]["miou"] is not None and 0 <= metrics["all_labels"]["miou"] <= 1
    assert metrics["unseen_only"] is not None
    for name in ("examples.png", "per_class_iou.png", "loss_curve.png", "report.md"):
        assert (report / name).stat().st_size > 0
    return metrics


def test_demo_writes_a_report_on_synthetic_data(tmp_path):
    root = generate_synthetic(tmp_path / "synth", n_train=8, n_val=2, n_test=3, size=64)
    cfg = demo_config(run_dir=str(tmp_path / "demo"), steps=2, data_root=str(root))
    report = run_demo(dataclasses.replace(cfg, progress=False))
    metrics = _check_report(report, 4)
    assert metrics["num_images"] == 3
    assert "red stripes" in (report / "report.md").read_text()
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
        "--amp",
        "bf16",
    ]
    assert main(args) == 0
    assert out.stat().st_size > 0
    # execution options on the command line: bf16 is named in the protocol, the window batch changes nothing
    evaluate = ["evaluate", "--run", str(tmp_path / "demo"), "--max-images", "1", "--mode", "sliding"]
    for extra, name in (([], "a"), (["--window-batch", "1"], "b"), (["--amp", "bf16"], "c")):
        assert main([*evaluate, *extra, "--out", str(tmp_path / f"{name}.json")]) == 0
    a, b, c = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "abc")
    assert a["confusion"] == b["confusion"] and a["protocol"] == b["protocol"] == "sliding(stride 0.67)"
    assert c["protocol"] == "sliding(stride 0.67), bf16 autocast"


@pytest.mark.slow
def test_msrc_integration_train_demo_and_evaluate(msrc_root, tmp_path, capsys):
    run = tmp_path / "msrc"
    cfg = demo_config("msrc_v2", str(run), steps=2, data_root=str(msrc_root), fold=0, max_images=8)
    report = run_demo(dataclasses.replace(cfg, progress=False))
    metrics = _check_report(report, 6)
    assert metrics["unseen_classes"][0] == "building"
    out = tmp_path / "eval.json"
    assert (
        main(["evaluate", "--run", str(run), "--split", "val", "--max-images", "2", "--out", str(out)]) == 0
    )
    assert json.loads(out.read_text())["num_images"] == 2
