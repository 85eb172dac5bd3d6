"""The one scoring loop: images through the protocol's inference once, then every *setting* scored from the same
logits into its own accumulator.

A :class:`Setting` says which classes compete (a label subset), how targets map onto them (other classes and
void are not scored) and an optional seen-class logit offset (calibration). Evaluation, the seen-offset sweep and
the episodic generalised settings are all lists of settings over this loop, so there is one implementation of
"logits -> prediction -> confusion counts". Logits are computed once per distinct label subset (a head block such
as the official bottleneck couples labels, so a subset's logits are not a slice of the full set's).

Counts stay on the model's device and are read once at the end; per-image counts (:class:`ImageCounts`) are kept
for the bootstrap. Non-finite logits stop the evaluation with a message instead of scoring a broken model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lseg_nb.config import EvalConfig
from lseg_nb.data.loading import eval_batches
from lseg_nb.data.transforms import denormalize
from lseg_nb.engine.inference import predict_logits_multi, refine_logits
from lseg_nb.engine.metrics import ImageCounts, confusion_matrices
from lseg_nb.engine.postprocess import (
    encode_labels,
    max_over_names,
    offset_argmax,
    protocol_predict,
    protocol_scores,
    seen_unseen_max,
    shift_seen,
)
from lseg_nb.utils.device import model_device
from lseg_nb.utils.errors import DivergedError
from lseg_nb.utils.labels import LabelSplit

#: Batches between two checks that the logits are finite (each check waits for the device).
_FINITE_EVERY = 16


@dataclass(frozen=True)
class Setting:
    """One way of scoring the same logits.

    ``name``: key in the result (``all_labels``, ``calibrated``, ``unseen_only``, ...). ``classes``: indices
    (into the evaluated :class:`LabelSplit`) of the competing classes, in order. ``labels``: the setting's own
    label set (those classes, with their seen/unseen positions and background) that its metrics use.
    ``offset``: subtracted from the logits of the seen classes' names (seen-bias calibration; 0 = none).
    """

    name: str
    classes: tuple[int, ...]
    labels: LabelSplit
    offset: float = 0.0
    description: str = ""


class ConfusionAccumulator:
    """Confusion counts of one setting: the total ``(K, K)`` matrix (rows = target) and, with ``per_image``, the
    per-image true-positive, ground-truth and predicted pixel counts. Everything stays on ``device``."""

    def __init__(self, k: int, device: torch.device, per_image: bool = True) -> None:
        self.k = k
        self.total = torch.zeros(k, k, dtype=torch.long, device=device)
        self.per_image = per_image
        self._parts: list[Tensor] = []

    def add(self, pred: Tensor, target: Tensor) -> None:
        """``pred`` ``(B, H, W)`` in ``[0, K)``; ``target`` ``(B, H, W)``, values outside ``[0, K)`` not scored."""
        cms = confusion_matrices(pred, target, self.k, -1, check=False)
        self.total += cms.sum(0)
        if self.per_image:
            self._parts.append(torch.stack([cms.diagonal(dim1=1, dim2=2), cms.sum(2), cms.sum(1)], 1))

    def result(self, ids: Sequence[str] = ()) -> tuple[np.ndarray, ImageCounts | None]:
        """The total matrix and the per-image counts as numpy (the one read from the device)."""
        total = self.total.cpu().numpy()
        if not self.per_image:
            return total, None
        parts = torch.cat(self._parts).cpu().numpy() if self._parts else np.zeros((0, 3, self.k), np.int64)
        return total, ImageCounts(parts[:, 0], parts[:, 1], parts[:, 2], tuple(ids))


@dataclass(frozen=True, eq=False)
class Scored:
    """What one pass produced: per setting the total confusion matrix and per-image counts, the image ids in
    order, and the kept examples ``(index, image uint8, pred over the first setting's classes, target)``."""

    confusion: dict[str, np.ndarray]
    per_image: dict[str, ImageCounts | None]
    ids: tuple[str, ...]
    examples: tuple[tuple[int, np.ndarray, np.ndarray, np.ndarray], ...]


def image_ids(dataset: Dataset, n: int) -> tuple[str, ...]:
    """Stable ids of the first ``n`` items (the dataset's ``ids`` when it has them, else the indices)."""
    ids = getattr(dataset, "ids", None)
    if ids is not None and len(ids) >= n:
        return tuple(str(i) for i in list(ids)[:n])
    return tuple(str(i) for i in range(n))


def score_settings(
    model: nn.Module,
    dataset: Dataset,
    labels: LabelSplit,
    settings: Sequence[Setting],
    protocol: EvalConfig,
    *,
    max_images: int | None = None,
    keep: dict[int, int] | None = None,
    per_image: bool = True,
    num_workers: int | None = None,
    batch_size: int = 1,
    progress: bool = True,
    desc: str = "evaluate",
) -> Scored:
    """Run ``protocol``'s inference over ``dataset`` items ``(image (3, H, W) normalised, label (H, W) with
    ``labels.void``)`` once and score every setting (module docstring). ``keep``: ``{dataset index: figure
    position}`` of images kept with their prediction (the first setting's) for figures."""
    k = labels.num_classes
    device = model_device(model)
    text, owner = encode_labels(model, labels)
    # one text set per distinct class subset; within a set, names keep the order of LabelSplit.texts
    subsets = list(dict.fromkeys(s.classes for s in settings))
    texts, owners = [], []
    names_of: dict[int, list[int]] = {}  # class -> its entries of LabelSplit.texts (linear, not C x T)
    for i, c in enumerate(labels.owner):
        names_of.setdefault(c, []).append(i)
    for classes in subsets:
        pick = [i for c in classes for i in names_of[c]]
        texts.append(text[pick])
        owners.append(torch.tensor([j for j, c in enumerate(classes) for _ in names_of[c]]))
    luts = [labels.target_lut(s.classes, ignore_index=-1).to(device) for s in settings]  # -1: not scored
    seen_masks = [torch.zeros(len(s.classes), dtype=torch.bool, device=device) for s in settings]
    for mask, s in zip(seen_masks, settings, strict=True):
        mask[list(s.labels.seen)] = True
    scale = getattr(model, "logit_scale", None)
    plain = not protocol.scores_probabilities
    plain = plain and protocol.pamr_steps == 0
    accs = [ConfusionAccumulator(len(s.classes), device, per_image) for s in settings]
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    keep = keep or {}
    kept = []
    finite = torch.ones((), dtype=torch.bool, device=device)
    batches = eval_batches(
        dataset,
        device,
        indices=range(n),
        batch_size=batch_size,
        num_classes=k,
        ignore_index=labels.void,
        num_workers=num_workers,
    )
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for step, (index, images, target) in enumerate(batches):
            images = images.to(device, non_blocking=True)
            logits = refine_logits(images, predict_logits_multi(model, images, texts, protocol), protocol)
            finite &= torch.stack([torch.isfinite(t).all() for t in logits]).all()
            if step % _FINITE_EVERY == 0 and not bool(finite):
                break
            target = target.to(device, non_blocking=True)
            maxima: dict[tuple, tuple[Tensor, ...]] = {}  # per subset and seen mask, for this batch
            for si, s in enumerate(settings):
                sub = subsets.index(s.classes)
                if plain:  # argmax of class logits: any seen offset is one comparison per pixel
                    key = (sub, s.labels.seen)
                    if key not in maxima:
                        maxima[key] = seen_unseen_max(
                            max_over_names(logits[sub], owners[sub]), seen_masks[si]
                        )
                    pred = offset_argmax(maxima[key], s.offset)
                else:
                    name_logits = logits[sub]
                    if s.offset:
                        name_logits = shift_seen(name_logits, owners[sub], seen_masks[si], s.offset)
                    scores = protocol_scores(name_logits, owners[sub], protocol, scale)
                    pred = protocol_predict(scores, protocol, s.labels.background)
                accs[si].add(pred, luts[si][target])
                if si == 0:
                    for j in range(images.shape[0]):
                        if int(index[j]) in keep:
                            img = denormalize(images[j], model.config.mean, model.config.std)
                            kept.append((int(index[j]), img, pred[j].cpu().numpy(), target[j].cpu().numpy()))
            bar.update(images.shape[0])
    if not bool(finite):
        raise DivergedError(
            "the model produced non-finite logits (NaN or inf): its weights or inputs are broken; no score is "
            "reported. Check the weights file (a diverged run?) and the input normalisation"
        )
    ids = image_ids(dataset, n)
    confusion, counts = {}, {}
    for s, acc in zip(settings, accs, strict=True):
        confusion[s.name], counts[s.name] = acc.result(ids)
    examples = tuple(sorted(kept, key=lambda e: keep[e[0]]))
    return Scored(confusion, counts, ids, examples)
