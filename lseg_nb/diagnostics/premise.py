"""The premise test: does zero-shot transfer follow semantic proximity?

LSeg's zero-shot claim rests on a premise its referee named: the text encoder's semantic relations carry over to
pixels of classes never trained on. What would settle it: accuracy on unseen classes that are semantically far
from every training class. For every unseen class of every stored run this module takes

* ``x``: the cosine similarity, in a reference text space (by default MiniLM, the runs' text encoder), between
  the class name and its nearest *seen* class name -- how much semantic help the class could get;
* ``y``: the class's unseen-only IoU (the ZS3Net/SPNet setting: only the unseen labels compete),

and measures their Spearman rank correlation with a permutation p-value (``x`` shuffled against ``y``, seeded).
Runs with random text embeddings are the control: their label vectors carry no semantics, so if transfer rides
on the text encoder the correlation should be there for MiniLM runs and absent for random ones. A correlation in
both would point at something else (visual similarity of class pairs, class size); none in either says the
premise is not visible at this scale. ``y`` is one run's IoU per class: classes repeat across seeds, so the
permutation test treats (run, class) pairs as exchangeable -- an approximation the notebook states.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from lseg_nb.diagnostics.neighbours import rank_correlation_rows
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.optional import import_optional

__all__ = ["PremiseResult", "PremiseRow", "load_results", "premise_rows", "premise_test", "rank_correlation"]


@dataclass(frozen=True)
class PremiseRow:
    """One unseen class of one run: its nearest seen class, their similarity and the class's unseen-only IoU
    (percent)."""

    run: str
    text: str
    fold: str
    seed: int
    unseen_class: str
    nearest_seen: str
    similarity: float
    iou: float


@dataclass(frozen=True)
class PremiseResult:
    """Rows and, per text encoder of the runs, ``(n, spearman rho, permutation p)``."""

    rows: tuple[PremiseRow, ...]
    correlations: dict[str, tuple[int, float, float]]
    permutations: int
    seed: int

    def summary(self) -> list[str]:
        return [
            f"{text}: rho = {rho:+.2f} over {n} (run, unseen class) pairs, permutation p = {p:.3g} "
            f"({self.permutations} permutations, seed {self.seed})"
            for text, (n, rho, p) in self.correlations.items()
        ]


def rank_correlation(
    x: Sequence[float], y: Sequence[float], permutations: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """Spearman's rho of ``x`` and ``y`` (average ranks for ties) and a two-sided permutation p-value
    ``(1 + #{|rho_perm| >= |rho|}) / (1 + permutations)``, ``x`` shuffled against ``y`` (seeded)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) != len(y) or len(x) < 3:
        raise InputError(
            f"a rank correlation needs two equally long series of at least 3 values, got {len(x)}"
        )
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), 1.0
    rankdata = import_optional("scipy.stats", "diagnostics", "the premise test").rankdata
    rx, ry = rankdata(x), rankdata(y)
    rho = float(rank_correlation_rows(rx[None], ry)[0])
    rng = np.random.default_rng(seed)
    null = rank_correlation_rows(np.stack([rng.permutation(rx) for _ in range(permutations)]), ry)
    p = (1 + np.count_nonzero(np.abs(null) >= abs(rho) - 1e-12)) / (1 + permutations)
    return rho, float(p)


def premise_rows(results: Sequence[Mapping], encode: Callable[[list[str]], Tensor]) -> list[PremiseRow]:
    """One :class:`PremiseRow` per unseen class of each stored run (``benchmarks/msrc_zero_shot.py`` JSON:
    ``seen_classes``, ``unseen_classes``, ``unseen_only.per_class_iou``); ``encode`` embeds class names in the
    reference text space."""
    rows = []
    for r in results:
        missing = [k for k in ("run", "text", "seen_classes", "unseen_classes", "unseen_only") if k not in r]
        if missing:
            raise InputError(
                f"result {r.get('run', '?')!r} lacks {missing}: not a benchmarks/msrc_zero_shot.py file"
            )
        seen, unseen = list(r["seen_classes"]), list(r["unseen_classes"])
        emb = F.normalize(encode(seen + unseen).float(), dim=-1)
        sim = emb[len(seen) :] @ emb[: len(seen)].T
        best, where = sim.max(1)
        per_class = r["unseen_only"]["per_class_iou"]
        for j, name in enumerate(unseen):
            if per_class.get(name) is None:
                continue
            rows.append(
                PremiseRow(
                    str(r["run"]), str(r["text"]), str(r.get("fold", "")), int(r.get("seed", 0)), name,
                    seen[int(where[j])], float(best[j]), float(per_class[name]),
                )
            )  # fmt: skip
    return rows


def premise_test(
    results: Sequence[Mapping],
    encode: Callable[[list[str]], Tensor],
    permutations: int = 10000,
    seed: int = 0,
) -> PremiseResult:
    """:func:`premise_rows` and the rank correlation of similarity and IoU per text encoder of the runs."""
    rows = premise_rows(results, encode)
    correlations = {}
    for text in dict.fromkeys(r.text for r in rows):
        sub = [r for r in rows if r.text == text]
        if len(sub) >= 3:
            rho, p = rank_correlation([r.similarity for r in sub], [r.iou for r in sub], permutations, seed)
            correlations[text] = (len(sub), rho, p)
    return PremiseResult(tuple(rows), correlations, permutations, seed)


def load_results(folder: str, pattern: str = "*.json") -> list[dict]:
    """The stored run results of ``benchmarks/msrc_zero_shot.py`` in ``folder`` that have unseen classes."""
    out = []
    for path in sorted(Path(folder).expanduser().glob(pattern)):
        data = json.loads(path.read_text())
        if data.get("unseen_classes") and "unseen_only" in data:
            out.append(data)
    if not out:
        raise InputError(
            f"no run results with unseen classes in {folder} (benchmarks/msrc_zero_shot.py writes them)"
        )
    return out
