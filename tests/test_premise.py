"""The premise test (issue 18): Spearman's rho as scipy computes it, a permutation p-value that finds a planted
relation and holds its level under the null, and rows built from stored results with a known text space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from lseg_nb.diagnostics.premise import premise_rows, premise_test, rank_correlation


def test_rho_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40).astype(float), rng.normal(size=40)
    rho, _ = rank_correlation(x, y, permutations=10)
    assert rho == pytest.approx(spearmanr(x, y).statistic)


def test_permutation_p_finds_a_relation_and_holds_its_level():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    _, p = rank_correlation(x, x + 0.3 * rng.normal(size=30), permutations=2000)
    assert p < 0.01
    false_pos = sum(
        rank_correlation(rng.normal(size=20), rng.normal(size=20), 500, seed=t)[1] < 0.05 for t in range(200)
    )
    assert false_pos / 200 <= 0.10


def _encode(names):
    # a known text space: "cat" and "dog" close (cos 0.8), "car" orthogonal to both
    table = {"cat": [1.0, 0.0, 0.0], "dog": [0.8, 0.6, 0.0], "car": [0.0, 0.0, 1.0], "bus": [0.0, 0.6, 0.8]}
    return torch.tensor([table[n] for n in names])


def test_rows_take_the_nearest_seen_class_in_the_text_space():
    results = [
        {"run": "r1", "text": "t", "fold": "f", "seed": 0, "seen_classes": ["dog", "bus"],
         "unseen_classes": ["cat", "car"], "unseen_only": {"per_class_iou": {"cat": 40.0, "car": 5.0}}},
    ]  # fmt: skip
    rows = premise_rows(results, _encode)
    assert [(r.unseen_class, r.nearest_seen) for r in rows] == [("cat", "dog"), ("car", "bus")]
    assert rows[0].similarity == pytest.approx(0.8) and rows[1].similarity == pytest.approx(0.8)
    assert [r.iou for r in rows] == [40.0, 5.0]
    with pytest.raises(ValueError, match="lacks"):
        premise_rows([{"run": "x"}], _encode)


def test_premise_test_groups_by_text_encoder():
    def result(run, text, ious):
        return {"run": run, "text": text, "seen_classes": ["dog", "bus"], "unseen_classes": ["cat", "car"],
                "unseen_only": {"per_class_iou": dict(zip(["cat", "car"], ious))}}  # fmt: skip

    results = [result(f"m{i}", "minilm", [40 + i, 5 + i]) for i in range(3)] + [
        result(f"r{i}", "random", [5, 5]) for i in range(3)
    ]
    out = premise_test(results, _encode, permutations=200)
    assert set(out.correlations) == {"minilm", "random"} and out.correlations["minilm"][0] == 6
    assert "minilm: rho" in out.summary()[0]
