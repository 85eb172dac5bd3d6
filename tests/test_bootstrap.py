"""Bootstrap intervals and the paired comparison (issue 18): resampled metrics equal the confusion-matrix
metrics, intervals cover a known value at about the nominal rate, the paired test's false-positive rate under
a simulated null is near its level, and evaluation reports carry the intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lseg_nb.apps.reports import metrics_rows
from lseg_nb.config import EvalConfig
from lseg_nb.engine.bootstrap import count_metrics, episodic_intervals, image_intervals, paired_difference
from lseg_nb.engine.dense import EvalData
from lseg_nb.engine.evaluate import evaluate
from lseg_nb.engine.metrics import ImageCounts, compute_metrics
from lseg_nb.utils.labels import LabelSplit


def _counts_from_confusions(cms: np.ndarray) -> ImageCounts:
    tp = np.stack([np.diag(m) for m in cms])
    return ImageCounts(tp, cms.sum(2), cms.sum(1), tuple(f"im{i}" for i in range(len(cms))))


def test_counts_give_the_confusion_matrix_metrics():
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 50, (7, 5, 5))
    cms[:, 4, :] = 0  # class 4 absent from every target
    cms[:, :, 4] = 0  # and never predicted: no union, excluded from the means
    c = _counts_from_confusions(cms)
    got = count_metrics(
        c.tp.sum(0)[None], c.gt.sum(0)[None], c.pred.sum(0)[None], seen=[0, 1], unseen=[2, 3, 4]
    )
    want = compute_metrics(cms.sum(0), list("abcde"), [0, 1], [2, 3, 4])
    assert got["miou"][0] == pytest.approx(want.miou) and got["pixel_acc"][0] == pytest.approx(want.pixel_acc)
    assert got["seen_miou"][0] == pytest.approx(want.seen_miou)
    assert got["unseen_miou"][0] == pytest.approx(want.unseen_miou)
    assert got["harmonic_iou"][0] == pytest.approx(want.harmonic_iou)
    np.testing.assert_allclose(got["iou"][0], want.per_class_iou, equal_nan=True)


def _dataset(rng: np.random.Generator, n: int, shift: float = 0.0) -> ImageCounts:
    """n images, 3 classes, 100 ground-truth pixels of each; per image the share predicted correctly varies."""
    acc = np.clip(rng.beta(4, 2, size=(n, 3)) - shift, 0, 1)
    tp = np.round(acc * 100).astype(np.int64)
    gt = np.full((n, 3), 100, np.int64)
    wrong = gt - tp  # wrong pixels land on the next class
    pred = tp + np.roll(wrong, 1, axis=1)
    return ImageCounts(tp, gt, pred)


def test_interval_covers_the_population_value_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    big = _dataset(rng, 200_000)
    truth = count_metrics(big.tp.sum(0)[None], big.gt.sum(0)[None], big.pred.sum(0)[None])["miou"][0]
    hits = 0
    trials = 200
    for t in range(trials):
        ci = image_intervals(_dataset(rng, 40), ["a", "b", "c"], resamples=400, seed=t)["miou"]
        hits += ci[0] <= truth <= ci[1]
    assert 0.88 <= hits / trials <= 0.99  # nominal 0.95; percentile intervals run a little narrow at n = 40


def test_paired_test_holds_its_level_under_the_null_and_finds_a_real_difference():
    rng = np.random.default_rng(2)
    trials, false_pos = 200, 0
    for t in range(trials):
        a, b = _dataset(rng, 40), _dataset(rng, 40)  # same distribution: any difference is noise
        false_pos += paired_difference(a, b, resamples=400, seed=t).p_value < 0.05
    assert false_pos / trials <= 0.10
    a = _dataset(rng, 40)
    worse = ImageCounts(
        np.maximum(a.tp - 15, 0), a.gt, a.pred
    )  # B loses 15 correct pixels per class and image
    worse = ImageCounts(worse.tp, a.gt, worse.tp + (a.pred - a.tp) + 15)
    d = paired_difference(a, worse, resamples=400)
    assert d.difference > 0 and d.p_value < 0.01 and d.interval[0] > 0
    assert "difference +" in d.line()


def test_paired_comparison_refuses_other_images():
    a = ImageCounts(
        np.ones((2, 2), np.int64), np.ones((2, 2), np.int64), np.ones((2, 2), np.int64), ("x", "y")
    )
    b = ImageCounts(a.tp, a.gt, a.pred, ("x", "z"))
    with pytest.raises(ValueError, match="different images"):
        paired_difference(a, b)


def test_episodic_interval_brackets_the_hsnet_score():
    rng = np.random.default_rng(3)
    e = 300
    cls = rng.choice([1, 2, 3], size=e)
    union = rng.integers(50, 100, size=(e, 2))
    inter = (union * rng.uniform(0.2, 0.9, size=(e, 2))).astype(np.int64)
    ci = episodic_intervals(cls, inter, union, [1, 2, 3], resamples=500)
    fg_i = np.array([inter[cls == c, 1].sum() for c in (1, 2, 3)])
    fg_u = np.array([union[cls == c, 1].sum() for c in (1, 2, 3)])
    miou = (fg_i / fg_u).mean() * 100
    assert ci["miou"][0] < miou < ci["miou"][1] and ci["miou"][1] - ci["miou"][0] < 10
    assert "episode-level" in ci["method"]


def test_evaluate_reports_intervals(tiny_model):
    g = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(3, 32, 32, generator=g), torch.randint(0, 3, (32, 32), generator=g)) for _ in range(6)
    ]
    labels = LabelSplit.from_labels(["sky", "grass", "cow"], unseen=[2])
    result = evaluate(tiny_model, EvalData(data, labels), EvalConfig(bootstrap=200), progress=False)
    s = result.settings["all_labels"]
    lo, hi = s.intervals["miou"]
    assert lo <= s.metrics.miou <= hi and set(s.intervals["per_class"]) == {"sky", "grass", "cow"}
    row = metrics_rows(result)[0]
    assert isinstance(row["mIoU"], str) and row["mIoU"].count("[") == 1
    again = evaluate(tiny_model, EvalData(data, labels), EvalConfig(bootstrap=200), progress=False)
    assert again.settings["all_labels"].intervals == s.intervals  # seeded
    none = evaluate(tiny_model, EvalData(data, labels), EvalConfig(bootstrap=0), progress=False)
    assert none.settings["all_labels"].intervals is None


def _run(tmp_path, name: str, seed: int):
    from lseg_nb.checkpoints import save_lseg_nb
    from lseg_nb.config import DataConfig, TextEncoderConfig, TrainConfig, get_config, save_json
    from lseg_nb.data.synthetic import generate_synthetic
    from lseg_nb.models.lseg import create_model

    root = tmp_path / "synth"
    if not root.exists():
        generate_synthetic(root, seed=0, n_train=2, n_val=2, n_test=6, size=48)
    cfg = get_config(
        "lseg_small_cpu", features=8, crop_size=48, text=TextEncoderConfig(kind="random", dim=16)
    )
    run = tmp_path / name
    run.mkdir()
    data = DataConfig(dataset="synthetic_textures", data_root=str(root), fold=0)
    save_json(TrainConfig(model=cfg, data=data, run_dir=str(run)), run / "config.json")
    torch.manual_seed(seed)
    save_lseg_nb(create_model(cfg), run / "model.safetensors")
    return run


def test_compare_command_prints_the_paired_difference(tmp_path, capsys):
    from lseg_nb.apps.cli import main

    a, b = _run(tmp_path, "a", 0), _run(tmp_path, "b", 1)
    assert main(["compare", str(a), str(b), "--eval.bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert (
        "miou (A vs B):" in out
        and "difference" in out
        and "p = " in out
        and "200 resamples of the 6 images" in out
    )
    assert main(["compare", str(a), str(a), "--metric", "unseen_miou", "--setting", "all_labels"]) == 0
    assert "difference +0.0 [+0.0, +0.0], p = 1" in capsys.readouterr().out
