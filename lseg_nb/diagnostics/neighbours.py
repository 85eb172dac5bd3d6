"""Do pixels land near their own label text? Nearest-text statistics in the joint embedding space.

Definitions (all similarities are cosine; embeddings are re-normalised defensively):

* *vocabulary* = the ``K`` class texts followed by the optional distractor texts.
* *rank* of a pixel = 1 + number of vocabulary texts strictly more similar than its own label text
  (1 = its own label is the nearest text; ties count in the pixel's favour).
* *top1* = share of a class's pixels whose nearest vocabulary text is their own label.
* *confusion* ``C[i, j]`` = share of class-``i`` pixels whose nearest **class** text (distractors excluded) is
  ``j``; it is what the Spearman test compares with the text-text similarity ``S[i, j]`` over ordered pairs
  ``i != j`` of classes that have pixels: rho > 0 means pixels are confused with labels whose *texts* are similar,
  the premise LSeg's zero-shot transfer rests on. Its p-value comes from permuting class identities (Mantel
  test): the ordered pairs are not independent observations.
* For an unseen class, a *mistaken* pixel is one whose nearest class text is not its own label;
  ``confused_with_seen`` is the most frequent nearest **seen** class text (argmax over seen labels only) among
  mistaken pixels, and ``confused_share`` the share of mistaken pixels that pick it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lseg_nb.diagnostics.sampling import ArrayLike, as_tensor, flatten_pixels
from lseg_nb.utils.optional import import_optional


def check_text(text_emb: ArrayLike, names: Sequence[str], dim: int, what: str = "text_emb") -> Tensor:
    """Unit-normalised ``(V, D)`` float32 text embeddings, validated against ``names`` and pixel dim ``dim``."""
    t = as_tensor(text_emb, what, torch.float32)
    if t.ndim != 2 or t.shape[1] != dim:
        raise ValueError(f"{what} must be (V, {dim}) to match the pixel embeddings, got {tuple(t.shape)}")
    if len(names) != t.shape[0]:
        raise ValueError(f"{what} has {t.shape[0]} rows but {len(names)} names were given")
    return F.normalize(t, dim=-1)


def nearest_texts(
    pixel_emb: ArrayLike, text_emb: ArrayLike, k: int = 5, chunk_size: int = 65536
) -> tuple[Tensor, Tensor]:
    """Top-``k`` nearest texts per pixel: ``(N, D)`` x ``(V, D)`` -> ``(indices (N, k) long, sims (N, k))``.

    Cosine similarity, most similar first; computed in chunks of ``chunk_size`` pixels.
    """
    pix = F.normalize(as_tensor(pixel_emb, "pixel_emb", torch.float32), dim=-1)
    if pix.ndim != 2:
        raise ValueError(f"pixel_emb must be (N, D), got {tuple(pix.shape)}; use flatten_pixels for maps")
    text = check_text(text_emb, range(len(text_emb)), pix.shape[1])
    if not 1 <= k <= text.shape[0]:
        raise ValueError(f"k must be in 1..{text.shape[0]} (the number of texts), got {k}")
    idx, sims = [], []
    for start in range(0, pix.shape[0], chunk_size):
        s, i = (pix[start : start + chunk_size] @ text.T).topk(k, dim=1)
        idx.append(i)
        sims.append(s)
    return torch.cat(idx), torch.cat(sims)


@dataclass
class ClassNeighbours:
    """Nearest-text statistics of one class (see the module docstring for definitions)."""

    index: int
    name: str
    group: str  # "seen", "unseen" or "other"
    n_pixels: int
    top1: float
    mean_rank: float
    median_rank: float
    neighbours: list[tuple[str, float]]  # the k most frequent nearest texts with their pixel share
    mistaken: float  # share of pixels whose nearest class text is not their own
    confused_with_seen: str | None = None
    confused_share: float = float("nan")


@dataclass
class NeighbourReport:
    """Per-class nearest-text statistics plus the similarity-vs-confusion Spearman test."""

    classes: list[ClassNeighbours]
    vocabulary: list[str]
    confusion: np.ndarray  # (K, K) row shares over class texts; NaN rows for classes without pixels
    text_similarity: np.ndarray  # (K, K) cosine between class texts
    spearman_rho: float
    spearman_p: float  # Mantel permutation p-value (class identities permuted)
    n_pairs: int
    unseen_spearman_rho: float  # same test restricted to rows i in unseen
    unseen_spearman_p: float
    seen: list[int] = field(default_factory=list)
    unseen: list[int] = field(default_factory=list)

    def group_top1(self, group: str) -> float:
        """Pixel-weighted top-1 share of a group ("seen", "unseen", "other")."""
        rows = [c for c in self.classes if c.group == group]
        n = sum(c.n_pixels for c in rows)
        return sum(c.top1 * c.n_pixels for c in rows) / n if n else float("nan")

    def __getitem__(self, name: str) -> ClassNeighbours:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(f"no class {name!r} with pixels in this report")

    def to_rows(self) -> list[dict]:
        """One flat dict per class (neighbours as ``"name (share)"`` text), ready for a table."""
        rows = []
        for c in self.classes:
            row = {k: v for k, v in vars(c).items() if k != "neighbours"}
            row["neighbours"] = ", ".join(f"{n} ({s:.2f})" for n, s in c.neighbours)
            rows.append(row)
        return rows

    def to_dataframe(self):
        """:meth:`to_rows` as a ``pandas.DataFrame``."""
        pd = import_optional("pandas", "notebooks", "NeighbourReport.to_dataframe")
        return pd.DataFrame(self.to_rows())


def similarity_confusion_spearman(
    confusion: np.ndarray,
    text_similarity: np.ndarray,
    rows: Sequence[int] | None = None,
    n_permutations: int = 999,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Spearman rho between ``S[i, j]`` and ``C[i, j]`` over ordered pairs ``i != j``, with a Mantel-style
    permutation p-value: ``(rho, p, n_pairs)``.

    Only classes whose confusion row is defined (have pixels) take part, as rows and as columns; ``rows``
    restricts the rows further (e.g. to unseen classes). The pairs are not independent (each class appears in
    many pairs, ``S`` is symmetric), so scipy's p-value for rho would be far too small; instead the class
    identities of ``S`` are permuted (rows and columns together) ``n_permutations`` times (seeded) and
    ``p = (1 + #{|rho_perm| >= |rho|}) / (1 + n_permutations)`` (two-sided). Fewer than 3 pairs or constant
    input gives NaN.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    present = np.flatnonzero(~np.isnan(confusion).any(axis=1))
    row_set = present if rows is None else np.intersect1d(present, np.asarray(rows, dtype=int))
    ii, jj = np.meshgrid(row_set, present, indexing="ij")
    keep = ii != jj
    ii, jj = ii[keep], jj[keep]
    x, y = text_similarity[ii, jj], confusion[ii, jj]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), int(len(x))
    # scipy is in the 'diagnostics' extra: imported on use, so `import lseg_nb.diagnostics` works without it
    rankdata = import_optional(
        "scipy.stats", "diagnostics", "the similarity/confusion Spearman test"
    ).rankdata
    rho = rank_correlation_rows(rankdata(x)[None], rankdata(y))[0]
    rng = np.random.default_rng(seed)
    mapping = np.tile(np.arange(text_similarity.shape[0]), (n_permutations, 1))
    for b in range(n_permutations):
        mapping[b, present] = rng.permutation(present)
    permuted = text_similarity[mapping[:, ii], mapping[:, jj]]
    null = rank_correlation_rows(rankdata(permuted, axis=1), rankdata(y))
    p = (1 + np.count_nonzero(np.abs(null) >= abs(rho) - 1e-12)) / (1 + n_permutations)
    return float(rho), float(p), int(len(x))


def rank_correlation_rows(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``rx`` (ranks) with ``ry`` (ranks) = Spearman rho per row."""
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean()
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx @ ry) / den


def check_groups(k: int, seen: Sequence[int], unseen: Sequence[int]) -> list[str]:
    """Validate seen/unseen class indices; returns "seen"/"unseen"/"other" per class."""
    bad = [i for i in [*seen, *unseen] if not 0 <= int(i) < k]
    if bad:
        raise ValueError(f"seen/unseen indices {bad} are out of range for {k} classes")
    both = set(map(int, seen)) & set(map(int, unseen))
    if both:
        raise ValueError(f"classes {sorted(both)} are listed as both seen and unseen")
    return ["seen" if i in set(seen) else "unseen" if i in set(unseen) else "other" for i in range(k)]


def _pixel_stats(pix: Tensor, lab: Tensor, text: Tensor, k_cls: int, seen: Tensor, chunk: int) -> dict:
    """Per pixel: nearest vocabulary text, rank of own label, nearest class text, nearest seen text."""
    out: dict[str, list[Tensor]] = {"top": [], "rank": [], "cls": [], "seen": []}
    for start in range(0, pix.shape[0], chunk):
        s = pix[start : start + chunk] @ text.T
        own = s.gather(1, lab[start : start + chunk, None])
        out["top"].append(s.argmax(1))
        out["rank"].append(1 + (s > own).sum(1))
        out["cls"].append(s[:, :k_cls].argmax(1))
        out["seen"].append(
            seen[s[:, seen].argmax(1)] if len(seen) else torch.full_like(lab[start : start + chunk], -1)
        )
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def _class_row(
    i: int, name: str, group: str, st: dict, mask: np.ndarray, vocab: list[str], k: int
) -> ClassNeighbours:
    ranks = st["rank"][mask]
    top, counts = np.unique(st["top"][mask], return_counts=True)
    order = np.lexsort((top, -counts))[:k]  # most frequent first, ties by vocabulary order
    mistaken = st["cls"][mask] != i
    row = ClassNeighbours(
        index=i,
        name=name,
        group=group,
        n_pixels=int(mask.sum()),
        top1=float((st["top"][mask] == i).mean()),
        mean_rank=float(ranks.mean()),
        median_rank=float(np.median(ranks)),
        neighbours=[(vocab[top[j]], float(counts[j] / mask.sum())) for j in order],
        mistaken=float(mistaken.mean()),
    )
    if group == "unseen" and mistaken.any() and st["seen"][0] >= 0:
        s, c = np.unique(st["seen"][mask][mistaken], return_counts=True)
        row.confused_with_seen, row.confused_share = vocab[s[c.argmax()]], float(c.max() / c.sum())
    return row


def neighbour_analysis(
    pixel_emb: ArrayLike,
    pixel_labels: ArrayLike,
    text_emb: ArrayLike,
    class_names: Sequence[str],
    seen: Sequence[int],
    unseen: Sequence[int],
    distractor_emb: ArrayLike | None = None,
    distractor_names: Sequence[str] | None = None,
    k: int = 5,
    ignore_index: int = 255,
    chunk_size: int = 65536,
    n_permutations: int = 999,
    seed: int = 0,
) -> NeighbourReport:
    """Nearest-text analysis of labelled pixels; see the module docstring for every definition.

    ``pixel_emb`` ``(N, D)`` with ``pixel_labels`` ``(N,)`` (or a map ``(B, D, h, w)`` with ``(B, H, W)``
    labels); ``text_emb`` ``(K, D)`` for ``class_names``; ``seen``/``unseen`` class indices; optional distractor
    texts ``(M, D)`` join the vocabulary for ranks/top-1 but not the class confusion matrix.
    ``n_permutations``/``seed``: the Mantel permutation test of the similarity-confusion correlation.
    """
    pix, lab = flatten_pixels(pixel_emb, pixel_labels)
    pix = F.normalize(pix, dim=-1)
    n_cls = len(class_names)
    text, vocab = _vocabulary(text_emb, class_names, distractor_emb, distractor_names, pix.shape[1])
    groups = check_groups(n_cls, seen, unseen)
    keep = lab != ignore_index
    pix, lab = pix[keep], lab[keep]
    bad = lab[(lab < 0) | (lab >= n_cls)].unique().tolist()
    if bad:
        raise ValueError(f"pixel labels {bad} are neither in 0..{n_cls - 1} nor ignore_index={ignore_index}")
    if len(lab) == 0:
        raise ValueError("no labelled pixels (all are ignore_index)")
    seen_t = torch.as_tensor(sorted(map(int, seen)), dtype=torch.long)
    st = _pixel_stats(pix, lab, text, n_cls, seen_t, chunk_size)
    lab_np = lab.numpy()
    conf = _confusion(lab_np, st["cls"], n_cls)
    sim = (text[:n_cls] @ text[:n_cls].T).numpy().astype(np.float64)
    rho, p, n_pairs = similarity_confusion_spearman(conf, sim, n_permutations=n_permutations, seed=seed)
    urho, up, _ = similarity_confusion_spearman(
        conf, sim, rows=list(unseen), n_permutations=n_permutations, seed=seed
    )
    present = np.unique(lab_np).tolist()
    rows = [_class_row(i, class_names[i], groups[i], st, lab_np == i, vocab, k) for i in present]
    return NeighbourReport(
        rows, vocab, conf, sim, rho, p, n_pairs, urho, up, [int(i) for i in seen], [int(i) for i in unseen]
    )


def _vocabulary(
    text_emb: ArrayLike,
    class_names: Sequence[str],
    distractor_emb: ArrayLike | None,
    distractor_names: Sequence[str] | None,
    dim: int,
) -> tuple[Tensor, list[str]]:
    """Class texts followed by the distractor texts, validated, with their names."""
    text = check_text(text_emb, class_names, dim)
    vocab = list(class_names)
    if (distractor_emb is None) != (distractor_names is None):
        raise ValueError("give both distractor_emb and distractor_names, or neither")
    if distractor_emb is not None:
        text = torch.cat([text, check_text(distractor_emb, distractor_names, dim, "distractor_emb")])
        vocab += list(distractor_names)
    dup = sorted({v for v in vocab if vocab.count(v) > 1})
    if dup:
        raise ValueError(
            f"vocabulary names must be unique (class names + distractor names); duplicates: {dup}"
        )
    return text, vocab


def _confusion(labels: np.ndarray, nearest_class: np.ndarray, n_cls: int) -> np.ndarray:
    """Row-normalised ``(K, K)`` confusion of true label vs nearest class text; NaN rows without pixels."""
    conf = np.zeros((n_cls, n_cls))
    np.add.at(conf, (labels, nearest_class), 1.0)
    counts = conf.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return conf / counts  # 0 / 0 -> NaN marks classes without pixels
