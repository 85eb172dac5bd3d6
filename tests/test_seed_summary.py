"""benchmarks/msrc_zero_shot.py's summary over seeds (issue 18): mean and spread of the seeds' values, and the
pooled image-level bootstrap interval of the seed mean, on synthetic result records."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from lseg_nb.engine.bootstrap import image_intervals
from lseg_nb.engine.metrics import ImageCounts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
msrc = importlib.import_module("msrc_zero_shot")

IDS = ["a", "b", "c", "d"]


def _record(run: str, seed: int, tp, gt, pred, unseen_miou: float, ids=IDS) -> dict:
    """A result of :func:`msrc_zero_shot.score` with 2 classes (x seen, y unseen) and its per-image counts."""
    counts = {"ids": list(ids), "tp": tp, "gt": gt, "pred": pred}
    return {
        "run": run,
        "seed": seed,
        "seen_classes": ["x"],
        "unseen_classes": ["y"],
        "generalised_per_class_iou": {"x": 0.0, "y": 0.0},
        "generalised": {"miou": 20.0 + seed, "seen_miou": 30.0, "unseen_miou": unseen_miou, "harmonic": 1.0},
        "unseen_only": {"miou": 10.0 * (seed + 1)},
        "per_image": {"all_labels": counts, "unseen_only": None},
    }


TP = [[5, 1], [3, 0], [8, 2], [1, 1]]
GT = [[6, 3], [4, 1], [9, 2], [2, 4]]
PRED = [[7, 2], [4, 1], [9, 3], [2, 1]]


def test_mean_sd_and_groups_by_configuration():
    results = [
        _record("minilm_nb", 0, TP, GT, PRED, 2.0),
        _record("minilm_nb_s1", 1, TP, GT, PRED, 4.0),
        _record("minilm_nb_s2", 2, TP, GT, PRED, 9.0),
        _record("minilm_f0", 0, TP, GT, PRED, 5.0),  # one seed: no summary
    ]
    rows = msrc.seed_summary(results, resamples=200)
    assert {r["configuration"] for r in rows} == {"minilm_nb"}
    unseen = next(r for r in rows if r["metric"] == "generalised unseen mIoU")
    assert unseen["seeds"] == [0, 1, 2] and unseen["values"] == [2.0, 4.0, 9.0]
    assert unseen["mean"] == 5.0
    assert unseen["sd"] == pytest.approx(
        round(float(np.sqrt(((2 - 5) ** 2 + (4 - 5) ** 2 + (9 - 5) ** 2) / 2)), 1)
    )
    only = next(r for r in rows if r["metric"] == "unseen-only mIoU")
    assert only["values"] == [10.0, 20.0, 30.0] and only["pooled_interval"] is None  # no per-image counts


def test_pooled_interval_of_identical_seeds_is_the_single_seed_interval():
    results = [_record("random_nb", 0, TP, GT, PRED, 1.0), _record("random_nb_s1", 1, TP, GT, PRED, 1.0)]
    rows = {r["metric"]: r for r in msrc.seed_summary(results, resamples=500, seed=3)}
    counts = ImageCounts(np.array(TP), np.array(GT), np.array(PRED), tuple(IDS))
    single = image_intervals(counts, ["x", "y"], [0], [1], resamples=500, seed=3)
    for label, key in (("generalised mIoU", "miou"), ("generalised unseen mIoU", "unseen_miou")):
        assert rows[label]["pooled_interval"] == [round(100 * v, 1) for v in single[key]]


def test_pooled_interval_averages_seeds_per_resample_and_needs_the_same_images():
    # seed 1 gets every unseen pixel right, seed 0 none: the seed mean's interval lies between the two
    tp0 = [[t[0], 0] for t in TP]
    tp1 = [[t[0], g[1]] for t, g in zip(TP, GT, strict=True)]
    pred1 = [[p[0], g[1]] for p, g in zip(PRED, GT, strict=True)]
    results = [_record("minilm_nb", 0, tp0, GT, PRED, 0.0), _record("minilm_nb_s1", 1, tp1, GT, pred1, 100.0)]
    row = next(
        r for r in msrc.seed_summary(results, resamples=300) if r["metric"] == "generalised unseen mIoU"
    )
    lo, hi = row["pooled_interval"]
    assert lo == hi == 50.0  # IoU 0 and IoU 1 on every resample: their mean is always 0.5
    other = [results[0], _record("minilm_nb_s1", 1, tp1, GT, pred1, 100.0, ids=["a", "b", "c", "e"])]
    row = next(r for r in msrc.seed_summary(other) if r["metric"] == "generalised unseen mIoU")
    assert row["pooled_interval"] is None  # scored on other images: no shared resamples
