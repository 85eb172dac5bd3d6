"""Evaluate a model on a labelled data set with fixed labels, and in two zero-shot settings.

One confusion matrix per setting feeds all metrics (see :mod:`lseg_nb.engine.metrics`). With ``unseen`` classes
given, two settings are reported from the same image features:

* ``unseen_only`` (ZS3Net/SPNet-style zero-shot setting — NOT the LSeg paper's protocol, which is the episodic
  binary one in :mod:`lseg_nb.engine.fewshot`): the label set is restricted to the unseen classes and only pixels
  whose ground truth is an unseen class are scored. Its chance baselines (majority class, uniform guess) are
  reported next to it: with few unseen classes they are far from 0.
* ``all_labels`` (generalised zero-shot): every label competes; seen mIoU, unseen mIoU and their harmonic mean.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lseg_nb.config import DataConfig, EvalConfig
from lseg_nb.data.experiment import Experiment
from lseg_nb.data.loading import eval_batches
from lseg_nb.data.transforms import denormalize
from lseg_nb.engine.inference import Mode, predict_logits_multi, protocol_kwargs
from lseg_nb.engine.metrics import Baseline, SegMetrics, chance_baseline, compute_metrics, confusion_matrix
from lseg_nb.models import LSeg
from lseg_nb.utils.device import model_device
from lseg_nb.utils.io import atomic_write_text

IGNORE = 255


@dataclass(frozen=True, eq=False)
class EvalExample:
    """One image for figures: ``image`` uint8 ``(H, W, 3)`` (de-normalised), ``pred``/``target`` int64 ``(H, W)``.

    ``pred`` indexes the full label list; ``target`` keeps 255 for void pixels.
    """

    index: int
    image: np.ndarray
    pred: np.ndarray
    target: np.ndarray


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Metrics of one evaluation run. ``confusion``: ``(K, K)`` counts over all labels (rows = target).

    ``unseen_only``/``unseen_confusion``/``unseen_baseline`` exist only when unseen classes were given;
    ``unseen_confusion`` is indexed by position in ``unseen``. ``protocol`` names the inference protocol.
    ``baseline``/``unseen_baseline``: chance scores (majority class, uniform guess) on the same pixels.
    ``seen_offset``/``calibrated``/``calibrated_confusion``: with a seen-class logit offset (seen-bias
    calibration), the all-labels setting scored again with ``seen_offset`` subtracted from the seen labels' logits;
    ``all_labels`` stays the uncalibrated model.
    """

    all_labels: SegMetrics
    unseen_only: SegMetrics | None
    confusion: np.ndarray
    num_images: int
    mode: str
    seen: tuple[int, ...] | None = None
    unseen: tuple[int, ...] | None = None
    unseen_confusion: np.ndarray | None = None
    examples: tuple[EvalExample, ...] = field(default=(), repr=False)
    protocol: str = ""
    baseline: Baseline | None = None
    unseen_baseline: Baseline | None = None
    seen_offset: float | None = None
    calibrated: SegMetrics | None = None
    calibrated_confusion: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (examples are left out; NaN -> ``None``)."""
        return {
            "mode": self.mode,
            "protocol": self.protocol or self.mode,
            "num_images": self.num_images,
            "seen": list(self.seen) if self.seen is not None else None,
            "unseen": list(self.unseen) if self.unseen is not None else None,
            "all_labels": self.all_labels.to_dict(),
            "unseen_only": self.unseen_only.to_dict() if self.unseen_only is not None else None,
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "unseen_baseline": self.unseen_baseline.to_dict() if self.unseen_baseline is not None else None,
            "seen_offset": self.seen_offset,
            "calibrated": self.calibrated.to_dict() if self.calibrated is not None else None,
            "confusion": self.confusion.tolist(),
            "calibrated_confusion": self.calibrated_confusion.tolist()
            if self.calibrated_confusion is not None
            else None,
            "unseen_confusion": self.unseen_confusion.tolist() if self.unseen_confusion is not None else None,
        }

    def save_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")


def _unseen_lut(unseen: Sequence[int], k: int, device: torch.device) -> Tensor:
    """Lookup table: class ``unseen[j]`` -> ``j``, every other value (seen classes, void) -> void."""
    lut = torch.full((max(IGNORE, k) + 1,), IGNORE, dtype=torch.long)
    for j, c in enumerate(unseen):
        lut[c] = j
    return lut.to(device)


def resolve_split(
    k: int, seen: Sequence[int] | None, unseen: Sequence[int] | None
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """Checked ``(seen, unseen)`` class indices of ``k`` labels (``seen`` defaults to the rest of ``unseen``)."""
    if unseen is None:
        if seen is not None:
            raise ValueError(
                "seen classes given without unseen ones: pass unseen=... (seen defaults to the rest)"
            )
        return None, None
    unseen_t = tuple(int(c) for c in unseen)
    seen_t = (
        tuple(int(c) for c in seen) if seen is not None else tuple(c for c in range(k) if c not in unseen_t)
    )
    bad = [c for c in (*seen_t, *unseen_t) if not 0 <= c < k]
    if bad or not unseen_t or len(set(unseen_t)) != len(unseen_t):
        raise ValueError(
            f"unseen {unseen_t} / seen {seen_t} must be distinct, non-empty class indices in [0, {k})"
        )
    if set(seen_t) & set(unseen_t):
        raise ValueError(f"classes {sorted(set(seen_t) & set(unseen_t))} are both seen and unseen")
    return seen_t, unseen_t


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
        raise ValueError(f"the number of examples must be >= 0, got {n}")
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
        raise ValueError(f"the number of examples must be >= 0, got {n}")
    total = len(dataset) if max_images is None else min(len(dataset), max_images)
    if n == 0:
        return []
    sets = [_classes_of(dataset, i, num_classes) for i in range(total)]
    return diverse_indices(sets, n, {c: 2.0 for c in unseen})


def _example_positions(
    dataset: Dataset, n: int, k: int, examples: int | Sequence[int], unseen: Sequence[int]
) -> dict[int, int]:
    """``{dataset index: position in the figure}`` of the images kept for figures."""
    if isinstance(examples, (int, np.integer)) and not isinstance(examples, bool):
        chosen = example_indices(dataset, int(examples), k, n, unseen)
    else:
        chosen = [int(i) for i in examples]
        bad = [i for i in chosen if not 0 <= i < n]
        if bad or len(set(chosen)) != len(chosen):
            raise ValueError(f"examples {chosen} must be distinct image indices in [0, {n})")
    return {i: pos for pos, i in enumerate(chosen)}


def evaluate(
    model: LSeg,
    dataset: Dataset,
    labels: Sequence[str],
    *,
    seen: Sequence[int] | None = None,
    unseen: Sequence[int] | None = None,
    mode: Mode = "single",
    batch_size: int = 1,
    max_images: int | None = None,
    progress: bool = True,
    examples: int | Sequence[int] = 0,
    background: int | None = None,
    num_workers: int | None = None,
    seen_offset: float | None = None,
    **inference_kwargs: Any,
) -> EvalResult:
    """Score ``model`` on ``dataset`` items ``(image (3, H, W) normalised float, label (H, W) long, 255 = void)``.

    ``labels[c]`` is the text of class index ``c``. ``unseen`` (with ``seen`` defaulting to the remaining
    classes) adds the unseen-only setting (ZS3Net/SPNet-style) next to the generalised all-labels one. ``mode`` and
    ``inference_kwargs`` go to :func:`~lseg_nb.engine.inference.predict_logits`; ``background`` to the FB-IoU.
    ``examples`` keeps images with predictions for figures: a list of dataset indices, or a number N of images
    chosen by :func:`example_indices` (diverse by class coverage, deterministic). Images of different sizes need
    ``batch_size=1``. Items are loaded by :func:`~lseg_nb.data.loading.eval_batches` (``num_workers``: worker
    processes, default 0 on CPU and ``min(8, CPUs)`` on a GPU); confusion matrices are counted on the model's
    device and read once at the end. ``seen_offset`` (``None``: not calibrated): also score the all-labels
    setting with this value
    subtracted from the seen labels' logits (``calibrated``; seen-class bias calibration, fitted on validation
    data by :func:`~lseg_nb.engine.seen_bias.fit_seen_offset`; needs ``unseen``).
    """
    k = len(labels)
    if k < 1 or batch_size < 1:
        raise ValueError(
            f"need at least one label and batch_size >= 1, got {k} labels, batch_size={batch_size}"
        )
    seen_t, unseen_t = resolve_split(k, seen, unseen)
    if seen_offset is not None and seen_t is None:
        raise ValueError(
            "seen_offset calibrates seen vs unseen labels: pass unseen=... (the held-out classes)"
        )
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    keep = _example_positions(dataset, n, k, examples, unseen_t or ())
    device = model_device(model)
    text_all = model.encode_text(list(labels))
    texts = [text_all] if unseen_t is None else [text_all, text_all[list(unseen_t)]]
    cm = torch.zeros(k, k, dtype=torch.long, device=device)
    cm_u = torch.zeros(len(unseen_t), len(unseen_t), dtype=torch.long, device=device) if unseen_t else None
    lut_u = _unseen_lut(unseen_t, k, device) if unseen_t else None
    shift = torch.zeros(k, device=device)
    cm_c = None
    if seen_offset is not None:
        shift[list(seen_t)] = float(seen_offset)
        cm_c = torch.zeros(k, k, dtype=torch.long, device=device)
    kept: list[EvalExample] = []
    batches = eval_batches(
        dataset, device, indices=range(n), batch_size=batch_size, num_classes=k, num_workers=num_workers
    )
    with tqdm(total=n, desc=f"evaluate ({mode})", unit="img", disable=not progress) as bar:
        for index, images, target in batches:
            logits = predict_logits_multi(
                model, images.to(device, non_blocking=True), texts, mode, **inference_kwargs
            )
            target = target.to(device, non_blocking=True)
            pred = logits[0].argmax(1)
            cm += confusion_matrix(pred, target, k, IGNORE, check=False)  # argmax: in range by construction
            if cm_c is not None:
                pred_c = (logits[0] - shift[None, :, None, None]).argmax(1)
                cm_c += confusion_matrix(pred_c, target, k, IGNORE, check=False)
            if cm_u is not None:
                cm_u += confusion_matrix(
                    logits[1].argmax(1), lut_u[target], len(unseen_t), IGNORE, check=False
                )
            for j in range(images.shape[0]):
                if int(index[j]) in keep:
                    img = denormalize(images[j], model.config.mean, model.config.std)
                    kept.append(
                        EvalExample(int(index[j]), img, pred[j].cpu().numpy(), target[j].cpu().numpy())
                    )
            bar.update(images.shape[0])
    # the one read of the counts
    cm, cm_u, cm_c = (m.cpu() if m is not None else None for m in (cm, cm_u, cm_c))
    names = [str(lab) for lab in labels]
    bg_u = unseen_t.index(background) if unseen_t and background in unseen_t else None
    unseen_names = [names[c] for c in unseen_t] if unseen_t else []
    return EvalResult(
        all_labels=compute_metrics(cm, names, seen_t, unseen_t, background),
        unseen_only=compute_metrics(cm_u, [names[c] for c in unseen_t], background=bg_u)
        if cm_u is not None
        else None,
        confusion=cm.numpy(),
        num_images=n,
        mode=mode,
        seen=seen_t,
        unseen=unseen_t,
        unseen_confusion=cm_u.numpy() if cm_u is not None else None,
        examples=tuple(sorted(kept, key=lambda e: keep[e.index])),
        protocol=protocol_name(mode, inference_kwargs),
        baseline=chance_baseline(cm, names),
        unseen_baseline=chance_baseline(cm_u, unseen_names) if cm_u is not None else None,
        seen_offset=seen_offset,
        calibrated=compute_metrics(cm_c, names, seen_t, unseen_t, background) if cm_c is not None else None,
        calibrated_confusion=cm_c.numpy() if cm_c is not None else None,
    )


def protocol_name(mode: str, kwargs: dict[str, Any]) -> str:
    """Readable protocol of an evaluation, e.g. ``multiscale(base 520, 6 scales, flip, window 480)``."""
    cfg = EvalConfig(
        mode=mode,  # type: ignore[arg-type]
        **{k: (tuple(v) if k == "scales" else v) for k, v in kwargs.items() if k in _PROTOCOL_FIELDS},
    )
    return cfg.describe(kwargs.get("crop_size"))


_PROTOCOL_FIELDS = ("stride_ratio", "base_size", "scales", "flip", "amp")


def evaluate_split(
    model: nn.Module,
    exp: Experiment,
    split: str,
    data: DataConfig,
    protocol: EvalConfig,
    max_images: int | None = None,
    examples: int | Sequence[int] = 0,
    progress: bool = True,
    seen_offset: float | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``split`` of an experiment with its labels and seen/unseen partition.

    Normalisation and the window (``crop_size``) come from ``model.config`` (LSeg or a training-free model);
    ``protocol`` is the evaluation protocol (a run's ``cfg.eval``, or e.g. ``OFFICIAL_EVAL``) with its execution
    options (``amp``, ``window_batch``, ``compile``); ``data.num_workers`` sets the loader's worker processes.
    ``examples``: image indices, or how many diverse images (:func:`example_indices`) to keep with predictions.
    ``seen_offset``: see :func:`evaluate`.
    """
    dataset = exp.dataset(
        split, model.config, dataclasses.replace(data, max_images=max_images or data.max_images)
    )
    labels = exp.labels
    return evaluate(
        model,
        dataset,
        list(labels.class_names),
        seen=list(labels.seen) if labels.unseen else None,
        unseen=list(labels.unseen) or None,
        max_images=max_images,
        progress=progress,
        examples=examples,
        num_workers=data.num_workers,
        seen_offset=seen_offset,
        **protocol_kwargs(protocol, model.config.crop_size),
    )
