"""Nearest-text analysis on planted embeddings whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_nb.diagnostics.neighbours import nearest_texts, neighbour_analysis, similarity_confusion_spearman

NAMES = ["sky", "grass", "tree", "cow", "sheep", "boat"]
SEEN, UNSEEN = [0, 1, 2], [3, 4, 5]


def _texts(k: int = 6, d: int = 32, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(k, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _planted(centres: torch.Tensor, labels: torch.Tensor, noise: float = 0.05, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(centres + noise * torch.randn(centres.shape, generator=g), dim=-1), labels


def test_nearest_texts_matches_brute_force_and_chunking():
    text = _texts()
    pix = F.normalize(torch.randn(50, 32, generator=torch.Generator().manual_seed(2)), dim=-1)
    idx, sims = nearest_texts(pix, text, k=3, chunk_size=7)
    full = pix @ text.T
    ref = full.argsort(dim=1, descending=True)[:, :3]
    assert torch.equal(idx, ref)
    assert torch.allclose(sims, full.gather(1, ref))
    with pytest.raises(ValueError, match="k must be in 1..6"):
        nearest_texts(pix, text, k=7)


def test_clusters_on_their_own_text_are_rank_one():
    text = _texts()
    lab = torch.arange(6).repeat_interleave(20)
    pix, lab = _planted(text[lab], lab)
    rep = neighbour_analysis(pix, lab, text, NAMES, SEEN, UNSEEN, k=3)
    assert [c.name for c in rep.classes] == NAMES
    for c in rep.classes:
        assert c.top1 == 1.0 and c.mean_rank == 1.0 and c.median_rank == 1.0 and c.mistaken == 0.0
        assert c.neighbours == [(c.name, 1.0)]
        assert c.confused_with_seen is None
    assert np.allclose(rep.confusion, np.eye(6))
    assert rep.group_top1("unseen") == 1.0


def test_hand_computed_ranks():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pix = torch.tensor([[0.8, 0.6], [0.6, 0.8], [0.6, 0.8], [-0.8, -0.6]])
    lab = torch.tensor([0, 2, 1, 2])
    # sims: p0 (.8,.6,-.8) own 0 -> rank 1; p1 own 2 (-.6) -> rank 3; p2 own 1 (.8) -> rank 1; p3 (-.8,-.6,.8) -> 1
    rep = neighbour_analysis(pix, lab, text, ["a", "b", "c"], seen=[0, 1], unseen=[2])
    c = rep["c"]
    assert c.n_pixels == 2 and c.mean_rank == 2.0 and c.median_rank == 2.0 and c.top1 == 0.5
    assert c.confused_with_seen == "b" and c.confused_share == 1.0 and c.mistaken == 0.5
    assert rep["a"].mean_rank == 1.0
    assert rep.confusion[2].tolist() == [0.0, 0.5, 0.5]


def test_unseen_cluster_planted_near_seen_text_is_confused_with_it():
    text = _texts()
    lab = torch.arange(6).repeat_interleave(20)
    centres = text[lab].clone()
    centres[lab == 4] = text[1]  # "sheep" pixels sit on the "grass" text
    pix, lab = _planted(centres, lab)
    rep = neighbour_analysis(pix, lab, text, NAMES, SEEN, UNSEEN)
    sheep = rep["sheep"]
    assert sheep.top1 == 0.0 and sheep.mistaken == 1.0 and sheep.mean_rank > 1
    assert sheep.confused_with_seen == "grass" and sheep.confused_share == 1.0
    assert sheep.neighbours[0] == ("grass", 1.0)
    assert rep.confusion[4, 1] == 1.0
    assert rep.group_top1("seen") == 1.0 and rep.group_top1("unseen") == pytest.approx(2 / 3)


def test_distractors_join_ranks_but_not_class_confusion():
    text = _texts()
    distractor = F.normalize(text[0] + 0.3 * _texts(1, seed=5)[0], dim=-1)[None]
    lab = torch.arange(6).repeat_interleave(10)
    centres = text[lab].clone()
    centres[lab == 0] = distractor[0]
    pix, lab = _planted(centres, lab, noise=0.01)
    rep = neighbour_analysis(pix, lab, text, NAMES, SEEN, UNSEEN, distractor, ["cloud"])
    assert rep.vocabulary == [*NAMES, "cloud"]
    assert rep["sky"].top1 == 0.0 and rep["sky"].mean_rank == 2.0
    assert rep["sky"].neighbours[0] == ("cloud", 1.0)
    assert rep.confusion[0, 0] == 1.0  # among class texts only, sky is still nearest


def _confusion_following(sign: float) -> tuple[float, float]:
    """Class-i pixels sit on text j with probability ~ exp(sign * 8 * S[i, j]) (j != i), else on their own."""
    text = _texts(8, 16, seed=3)
    sim = (text @ text.T).numpy()
    rng = np.random.default_rng(0)
    labels, centres = [], []
    for i in range(8):
        w = np.exp(sign * 8 * sim[i])
        w[i] = 0
        targets = rng.choice(8, size=300, p=w / w.sum())
        labels += [i] * 400
        centres += [i] * 100 + targets.tolist()
    pix, lab = _planted(text[torch.tensor(centres)], torch.tensor(labels), noise=0.01)
    rep = neighbour_analysis(pix, lab, text, [f"c{i}" for i in range(8)], list(range(4)), list(range(4, 8)))
    assert rep.n_pairs == 56
    return rep.spearman_rho, rep.spearman_p


def test_spearman_sign_follows_planted_confusion():
    rho, p = _confusion_following(+1)
    assert rho > 0.6 and p == pytest.approx(1 / 1000)  # no permutation of 999 reaches it
    rho_neg, _ = _confusion_following(-1)
    assert rho_neg < -0.3


def test_similarity_confusion_spearman_known_answer():
    sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    conf = np.array([[0.5, 0.4, 0.05], [0.3, 0.5, 0.2], [0.0, 0.1, 0.9]])  # monotone in sim off the diagonal
    rho, _, n = similarity_confusion_spearman(conf, sim)
    # symmetric S ties in pairs: ranks x = (1.5, 1.5, 3.5, 3.5, 5.5, 5.5) against y = 1..6 -> 16 / sqrt(16 * 17.5)
    assert rho == pytest.approx(4 / np.sqrt(17.5)) and n == 6
    conf[2] = np.nan  # class without pixels drops out as row and column
    assert similarity_confusion_spearman(conf, sim)[2] == 2


def test_map_input_ignore_index_and_errors():
    text = _texts(3, 8)
    emb = text[torch.tensor([0, 1, 2, 0])].T.reshape(1, 8, 2, 2)
    lab = torch.tensor([[[0, 1], [255, 0]]])
    rep = neighbour_analysis(emb, lab, text, ["a", "b", "c"], [0], [1, 2])
    assert [c.n_pixels for c in rep.classes] == [2, 1]
    with pytest.raises(ValueError, match=r"pixel labels \[7\]"):
        neighbour_analysis(emb, torch.tensor([[[0, 7], [1, 1]]]), text, ["a", "b", "c"], [0], [1])
    with pytest.raises(ValueError, match="both seen and unseen"):
        neighbour_analysis(emb, lab, text, ["a", "b", "c"], [0, 1], [1])
    with pytest.raises(ValueError, match=r"must be \(V, 8\)"):
        neighbour_analysis(emb, lab, text[:, :4], ["a", "b", "c"], [0], [1])
    with pytest.raises(ValueError, match="3 rows but 2 names"):
        neighbour_analysis(emb, lab, text, ["a", "b"], [0], [1])


def _null_trial(rng: np.random.Generator, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Text similarity and pixel confusion from independent random geometries (no true association)."""
    b = rng.normal(size=(k, 8))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    a = rng.normal(size=(k, 8))
    logits = a @ a.T
    np.fill_diagonal(logits, 5.0)
    conf = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return conf, b @ b.T


def test_permutation_p_value_keeps_its_false_positive_rate_under_a_simulated_null():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    trials, mantel, naive = 200, 0, 0
    for t in range(trials):
        conf, sim = _null_trial(rng)
        _, p, n = similarity_confusion_spearman(conf, sim, n_permutations=199, seed=t)
        mantel += p < 0.05
        ii, jj = np.nonzero(~np.eye(12, dtype=bool))
        naive += spearmanr(sim[ii, jj], conf[ii, jj]).pvalue < 0.05
    assert 0.01 <= mantel / trials <= 0.09, f"Mantel FPR {mantel / trials} should be near 0.05"
    # the old p-value (pairs treated as independent) rejects far more often than its nominal 5 %
    assert naive / trials > 0.12


def test_permutation_p_value_detects_a_real_association_and_is_seeded():
    rng = np.random.default_rng(0)
    b = rng.normal(size=(10, 8))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    sim = b @ b.T
    logits = 6 * sim
    np.fill_diagonal(logits, 8.0)
    conf = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rho, p, _ = similarity_confusion_spearman(conf, sim, n_permutations=199, seed=3)
    assert rho > 0.9 and p == pytest.approx(1 / 200)
    assert similarity_confusion_spearman(conf, sim, n_permutations=199, seed=3) == (rho, p, 90)
