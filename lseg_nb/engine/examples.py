"""Which images a figure shows: chosen for class coverage (each next image adds the most classes not yet shown),
deterministically, instead of the first few of a split."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lseg_nb.utils.errors import InputError


def diverse_indices(
    class_sets: Sequence[Iterable[int]], n: int, weights: Mapping[int, float] | None = None
) -> list[int]:
    """Pick ``n`` items greedily by class coverage: each next item adds the most not-yet-shown classes.

    ``class_sets[i]``: the classes present in item ``i``. A class counts ``weights[c]`` (default 1). Ties go to
    the item farthest (in index) from those already picked, then to the lowest index, so the choice is
    deterministic and spread over the list. When no item adds a new class, coverage starts afresh (a second round
    of the same rule). Returns indices in the order picked (at most ``len(class_sets)``).
    """
    if n < 0:
        raise InputError(f"the number of examples must be >= 0, got {n}")
    sets = [frozenset(int(c) for c in s) for s in class_sets]
    w = weights or {}
    chosen: list[int] = []
    shown: set[int] = set()
    left = set(range(len(sets)))
    while left and len(chosen) < n:
        # gain in not-yet-shown classes, then distance to the picked items, then the lowest index
        best = max(
            left,
            key=lambda i: (
                sum(w.get(c, 1.0) for c in sets[i] - shown),
                min((abs(i - j) for j in chosen), default=0),
                -i,
            ),
        )
        if shown and not sets[best] - shown:
            shown = set()  # everything still available is already shown: start a new round
            continue
        chosen.append(best)
        shown |= sets[best]
        left.remove(best)
    return chosen


def _classes_of(dataset: Dataset, i: int, k: int) -> set[int]:
    # A plain-layout dataset reads its label map without decoding the image; anything else yields (image, label).
    raw = getattr(dataset, "raw_label", None)
    label = np.asarray(raw(i)) if callable(raw) else torch.as_tensor(dataset[i][1]).numpy()
    values = np.unique(label)
    return {int(c) for c in values if 0 <= c < k}


def example_indices(
    dataset: Dataset, n: int, num_classes: int, max_images: int | None = None, unseen: Sequence[int] = ()
) -> list[int]:
    """``n`` diverse image indices of ``dataset`` (the first ``max_images``) for example figures, by ground-truth
    class coverage (:func:`diverse_indices`; ``unseen`` classes count twice, so zero-shot figures show them).

    Reads every label map once (not the images, for plain-layout datasets); deterministic for a dataset.
    """
    if n < 0:
        raise InputError(f"the number of examples must be >= 0, got {n}")
    total = len(dataset) if max_images is None else min(len(dataset), max_images)
    if n == 0:
        return []
    sets = [_classes_of(dataset, i, num_classes) for i in range(total)]
    return diverse_indices(sets, n, {c: 2.0 for c in unseen})


def example_positions(
    dataset: Dataset, n: int, k: int, examples: int | Sequence[int], unseen: Sequence[int]
) -> dict[int, int]:
    """``{dataset index: position in the figure}`` of the images kept for figures."""
    if isinstance(examples, (int, np.integer)) and not isinstance(examples, bool):
        chosen = example_indices(dataset, int(examples), k, n, unseen)
    else:
        chosen = [int(i) for i in examples]
        bad = [i for i in chosen if not 0 <= i < n]
        if bad or len(set(chosen)) != len(chosen):
            raise InputError(f"examples {chosen} must be distinct image indices in [0, {n})")
    return {i: pos for pos, i in enumerate(chosen)}
