"""Where Open mIoU's class similarities come from: the model's text encoder, or a matrix file the user gives.

Open mIoU (Zhou et al., arXiv 2311.03352; :func:`lseg_nb.engine.metrics.open_confusion`) credits an error by the
similarity of the predicted and the true class, so its value is only as meaningful as that similarity, and every
result names its source (``EvalConfig.open_similarity``):

* ``"text_encoder"``: the cosine similarity of the model's own class-name embeddings (with its prompt
  templates), negative values set to 0 and the diagonal to 1. A class with several names takes the most similar
  pair of names. The paper surveys eleven similarity measures (WordNet, text embeddings, language models) and its
  released evaluator reads a precomputed matrix; this source is lseg_nb's choice, not a matrix of the paper. CLIP
  text embeddings of unrelated nouns are far from orthogonal, so this source credits unrelated errors too: read
  Open mIoU with it as an upper reading, beside mIoU.
* a path to a CSV file: the paper's format (``pd.read_csv(path, index_col=0)`` in its
  ``ow_sem_seg_simi_matrix.py``): a header row of class names, then one row per class (its name, then its
  similarities), ``S[pred, gt]`` with the predicted class as the row. Rows and columns are matched to the label
  set by name, so their order does not matter; every class of the label set must be there.
* ``"none"``: no Open mIoU.

Synonyms never count as errors whatever the source: the names of one class are one class (a class scores the
maximum over its names before the argmax), so predicting any of its names is a true positive.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lseg_nb.engine.postprocess import encode_labels
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

__all__ = ["class_similarity", "load_similarity", "text_similarity"]


@torch.no_grad()
def text_similarity(model: nn.Module, labels: LabelSplit) -> np.ndarray:
    """``(C, C)`` class similarities from the model's text encoder (module docstring).

    Args:
        model: any lseg_nb model (its ``encode_text``).
        labels: the label set (several names per class allowed).
    """
    text, owner = encode_labels(model, labels)
    text = torch.nn.functional.normalize(text.double(), dim=-1).cpu()
    names = (text @ text.T).clamp(0, 1)  # (T, T) over every name
    k, t = labels.num_classes, len(owner)
    # the closest pair of names: max over each class's rows, then over each class's columns
    rows = names.new_full((k, t), -1.0).scatter_reduce(0, owner[:, None].expand(t, t), names, "amax")
    out = rows.new_full((k, k), -1.0).scatter_reduce(1, owner[None, :].expand(k, t), rows, "amax").numpy()
    np.fill_diagonal(out, 1.0)
    return out


def load_similarity(path: str | Path, labels: LabelSplit) -> np.ndarray:
    """A user's ``(C, C)`` similarity matrix from a CSV file (module docstring), in the label set's class order.

    Args:
        path: the CSV file (header: an empty first cell, then class names; rows: name, similarities).
        labels: the label set; classes are matched by their first name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"similarity matrix {path} does not exist: give a CSV file, 'text_encoder' or 'none'"
        )
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise InputError(
            f"similarity matrix {path} is empty: a header row of class names, then one row per class"
        )
    header = [h.strip() for h in rows[0][1:]]
    body = {r[0].strip(): r[1:] for r in rows[1:]}
    names = labels.class_names
    missing = sorted({n for n in names if n not in header or n not in body})
    if missing:
        raise InputError(f"similarity matrix {path} has no row or column for classes {missing}: add them")
    out = np.zeros((len(names), len(names)), dtype=np.float64)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            cell = body[a][header.index(b)] if header.index(b) < len(body[a]) else ""
            try:
                out[i, j] = float(cell)
            except ValueError:
                raise InputError(
                    f"similarity matrix {path}: the cell (row {a!r}, column {b!r}) is {cell!r}, not a number"
                ) from None
    if not np.isfinite(out).all() or (out < 0).any() or (out > 1).any():
        raise InputError(f"similarity matrix {path} holds values outside [0, 1]: similarities are in [0, 1]")
    bad = [n for i, n in enumerate(names) if out[i, i] != 1.0]
    if bad:
        raise InputError(
            f"similarity matrix {path}: classes {bad} are not similar 1 to themselves: set the diagonal to 1"
        )
    return out


def class_similarity(source: str, model: nn.Module, labels: LabelSplit) -> np.ndarray | None:
    """The similarity matrix of ``source`` (``"text_encoder"``, ``"none"`` or a CSV path) for ``labels``.

    Args:
        source: ``EvalConfig.open_similarity``.
        model: the evaluated model (for ``"text_encoder"``).
        labels: the evaluated label set.
    """
    if source == "none":
        return None
    if source == "text_encoder":
        return text_similarity(model, labels)
    return load_similarity(source, labels)
