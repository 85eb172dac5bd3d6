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


#: Largest ``(offsets + 1) * K * K`` count table of :class:`OffsetSweepAccumulator` (int64: 128 MB); a bigger
#: sweep is scored offset by offset.
_SWEEP_CELLS = 2**24
#: Offset-by-pixel comparisons per chunk of :meth:`OffsetSweepAccumulator.add` (bounds its memory).
_SWEEP_CHUNK = 2**22


class OffsetSweepAccumulator:
    """Total ``(K, K)`` confusion matrices of one class subset at each of many seen offsets (non-decreasing),
    from one comparison table per pixel instead of one argmax and one confusion matrix per offset.

    ``s_max - offset`` only falls as the offset grows, so a pixel predicts its best seen class for the first
    ``w`` offsets and its best unseen class for the rest (:func:`~lseg_nb.engine.postprocess.offset_argmax`'s
    arithmetic and ties, evaluated for every offset at once). Counting pixels by ``(w, target, seen class)`` and
    ``(w, target, unseen class)`` gives every offset's matrix as a suffix plus a prefix sum. This is what makes a
    seen-offset fit over 81 offsets cost about as much as one ordinary evaluation of the fitting split.
    """

    def __init__(self, k: int, offsets: Sequence[float], device: torch.device) -> None:
        self.k = k
        self.offsets = [float(o) for o in offsets]
        g1 = len(self.offsets) + 1
        self._seen = torch.zeros(g1 * k * k + 1, dtype=torch.long, device=device)  # + 1: unscored pixels
        self._unseen = torch.zeros_like(self._seen)

    @staticmethod
    def fits(k: int, offsets: Sequence[float]) -> bool:
        """Whether a sweep over ``offsets`` can be counted this way (sorted, and a table of bounded size)."""
        o = list(offsets)
        return len(o) > 1 and all(a <= b for a, b in zip(o, o[1:])) and (len(o) + 1) * k * k <= _SWEEP_CELLS

    def add(self, maxima: tuple[Tensor, Tensor, Tensor, Tensor], target: Tensor) -> None:
        """``maxima`` from :func:`~lseg_nb.engine.postprocess.seen_unseen_max`; ``target`` ``(B, H, W)``,
        values outside ``[0, K)`` not scored."""
        s_max, s_arg, u_max, u_arg = (t.reshape(-1) for t in maxima)
        t = target.reshape(-1).long()
        grid = torch.tensor(self.offsets, dtype=s_max.dtype, device=s_max.device)[:, None]
        wins = torch.empty_like(t)  # offsets at which the seen class wins, per pixel
        step = max(1, _SWEEP_CHUNK // len(self.offsets))
        for a in range(0, t.numel(), step):
            sm, um, ua, sa = (
                s_max[a : a + step],
                u_max[a : a + step],
                u_arg[a : a + step],
                s_arg[a : a + step],
            )
            shifted = sm[None] - grid  # as offset_argmax: (seen max - offset), compared with the unseen max
            unseen_wins = (um[None] > shifted) | ((um[None] == shifted) & (ua < sa)[None])
            wins[a : a + step] = (~unseen_wins).sum(0)
        k, dropped = self.k, self._seen.numel() - 1
        keep = (t >= 0) & (t < k)
        base = wins * (k * k) + t * k
        for counts, pred in ((self._seen, s_arg), (self._unseen, u_arg)):
            idx = torch.where(keep, base + pred.long(), dropped)
            counts.scatter_add_(0, idx, torch.ones_like(idx))

    def result(self) -> np.ndarray:
        """``(offsets, K, K)`` int64: offset ``g`` predicts the seen class on pixels with ``w > g``."""
        k, g1 = self.k, len(self.offsets) + 1
        seen = self._seen[:-1].reshape(g1, k, k)
        unseen = self._unseen[:-1].reshape(g1, k, k)
        from_seen = seen.flip(0).cumsum(0).flip(0)[1:]  # pixels with w > g
        from_unseen = unseen.cumsum(0)[:-1]  # pixels with w <= g
        return (from_seen + from_unseen).cpu().numpy()


def _sweeps(settings: Sequence[Setting], plain: bool, per_image: bool) -> dict[tuple, list[int]]:
    """Settings that differ only in their seen offset, to score with one :class:`OffsetSweepAccumulator`:
    ``{(classes, seen): [setting indices]}`` (plain argmax and totals only; the first setting is never swept,
    since its predictions are kept for figures)."""
    if not plain or per_image:
        return {}
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(settings[1:], 1):
        groups.setdefault((s.classes, s.labels.seen), []).append(i)
    return {
        key: idx
        for key, idx in groups.items()
        if OffsetSweepAccumulator.fits(len(key[0]), [settings[i].offset for i in idx])
    }


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
    sweeps = _sweeps(settings, plain, per_image)
    swept = {i for idx in sweeps.values() for i in idx}
    sweep_accs = {
        key: OffsetSweepAccumulator(len(key[0]), [settings[i].offset for i in idx], device)
        for key, idx in sweeps.items()
    }
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
            for key, sweep in sweep_accs.items():
                si = sweeps[key][0]
                sub = subsets.index(key[0])
                if (sub, key[1]) not in maxima:
                    maxima[(sub, key[1])] = seen_unseen_max(
                        max_over_names(logits[sub], owners[sub]), seen_masks[si]
                    )
                sweep.add(maxima[(sub, key[1])], luts[si][target])
            for si, s in enumerate(settings):
                if si in swept:
                    continue
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
    for si, (s, acc) in enumerate(zip(settings, accs, strict=True)):
        if si not in swept:
            confusion[s.name], counts[s.name] = acc.result(ids)
    for key, sweep in sweep_accs.items():
        for si, cm in zip(sweeps[key], sweep.result(), strict=True):
            confusion[settings[si].name], counts[settings[si].name] = cm, None
    examples = tuple(sorted(kept, key=lambda e: keep[e[0]]))
    return Scored(confusion, counts, ids, examples)
