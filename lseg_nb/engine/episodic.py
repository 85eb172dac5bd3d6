"""The LSeg paper's episodic zero-shot protocol (PASCAL-5i, COCO-20i, FSS-1000) and its generalised settings
(not in the paper). ADE20K-150, the paper's fixed-label benchmark, is dense evaluation with the official
multi-scale protocol (:data:`lseg_nb.config.OFFICIAL_EVAL`).

Episodic zero-shot (the paper's numbers; official ``test_lseg_zs.py`` with the HSNet loaders, ``--nshot 0``): each
episode is one query image and one unseen class of the fold. The image is resized to ``480 x 480`` (PIL
bilinear) and normalised with the model's mean/std (0.5 for ViT, ImageNet statistics for ResNet-101); the mask is
resized with nearest neighbour; the label set is ``["others", <class text>]``; the prediction is the argmax. Per
episode, background (0) and foreground (1) intersections and unions are counted over non-void pixels (255 = VOC
boundary) and summed per class over the fold. mIoU is the mean foreground IoU over the fold's classes and FB-IoU
the mean of the fold-level background and foreground IoU (HSNet ``AverageMeter``). Which episodes are served is the
adapter's business (:mod:`lseg_nb.data.benchmarks`): PASCAL 1000 episodes cycling through the fold's list, COCO 1000
seeded draws, FSS every test image once. Results are in percent.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lseg_nb.config import EvalConfig
from lseg_nb.data.benchmarks.base import (
    IGNORE,
    OTHERS,
    Episode,
    EpisodeSource,
    class_target,
    load_query,
    resize_labels,
)
from lseg_nb.data.loading import eval_batches
from lseg_nb.engine.bootstrap import episodic_intervals
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.engine.inference import eval_mode
from lseg_nb.engine.metrics import confusion_matrices
from lseg_nb.engine.results import EpisodeCounts, EpisodicResult, EvalResult
from lseg_nb.engine.scoring import Setting
from lseg_nb.utils.device import model_device
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

EPISODIC = "episodic binary zero-shot (paper protocol: HSNet episodes, ['others', class], 480x480)"


def binary_areas(pred: Tensor, target: Tensor, check: bool = True) -> tuple[Tensor, Tensor]:
    """Background/foreground intersection and union (int64) of one episode, or of a batch of episodes.

    ``pred``: ``(..., H, W)`` in {0, 1}; ``target``: ``(..., H, W)`` in {0, 1, 255}; pixels with target 255 are
    ignored. Returns two ``(..., 2)`` tensors on the inputs' device (``(2,)`` for one episode). ``check=False``
    skips the host-side range check of ``pred`` (for an argmax over two labels).
    """
    lead, hw = pred.shape[:-2], pred.shape[-2:]
    if target.shape != pred.shape or len(hw) != 2:
        raise InputError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be (..., H, W) alike"
        )
    cm = confusion_matrices(pred.reshape(-1, *hw), target.reshape(-1, *hw), 2, IGNORE, check)
    inter = cm.diagonal(dim1=-2, dim2=-1)
    union = cm.sum(-2) + cm.sum(-1) - inter
    return inter.reshape(*lead, 2), union.reshape(*lead, 2)


def hsnet_scores(inter: Tensor, union: Tensor, class_ids: list[int]) -> tuple[float, float]:
    """``(mIoU, FB-IoU)`` in percent from accumulated ``(2, C)`` areas (column ``c - 1`` = class ``c``).

    mIoU: mean over ``class_ids`` of foreground intersection / max(union, 1). FB-IoU: mean over background and
    foreground of (summed intersection / summed union) over ``class_ids``. Both exist only in this binary setting.
    """
    cols = torch.tensor([c - 1 for c in class_ids])
    i, u = inter[:, cols].double(), union[:, cols].double()
    miou = (i[1] / u[1].clamp(min=1)).mean().item() * 100
    fb_iou = (i.sum(1) / u.sum(1)).mean().item() * 100
    return miou, fb_iou


def _query(
    source: EpisodeSource,
    image_id: str,
    what: str,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> Tensor:
    path = source.image_path(image_id)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist ({source.benchmark}; run `lseg-nb prepare`)")
    return load_query(path, image_size, mean, std)


def load_episode(
    source: EpisodeSource, episode: Episode, image_size: int, model: nn.Module
) -> tuple[Tensor, Tensor]:
    """Normalised query ``(1, 3, S, S)`` and binary target ``(S, S)`` (0/1, 255 void) of one episode."""
    return _QueryItems(source, [episode], image_size, model.config.mean, model.config.std).load(0)


class _QueryItems(Dataset):
    """Queries as loader items ``(query (3, S, S), target (S, S))``: episodes (the binary target of their class)
    or image ids (the class map through ``lut``). Plain data only: worker processes copy nothing large."""

    def __init__(
        self,
        source: EpisodeSource,
        keys: Sequence[Episode | str],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        lut: Tensor | None = None,
    ) -> None:
        self.source, self.keys, self.image_size, self.lut = source, list(keys), image_size, lut
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, i: int) -> tuple[Tensor, Tensor]:
        key = self.keys[i]
        episode = isinstance(key, Episode)
        image_id = key.image_id if episode else key
        what = f"episode {key.image_id}__{key.class_id:02d}" if episode else f"image {key}"
        x = _query(self.source, image_id, what, self.image_size, self.mean, self.std)
        mask = resize_labels(self.source.class_map(image_id), self.image_size)
        return x, class_target(mask, key.class_id) if episode else self.lut[mask]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x, target = self.load(i)
        return x[0], target


def _episode_texts(model: nn.Module, names: Sequence[str], class_ids: Sequence[int]) -> Tensor:
    """``(C, 2, D)``: the label pair ``["others", class]`` of each class id (1-based), encoded in one call."""
    emb = model.encode_text([OTHERS, *(names[c - 1] for c in class_ids)])
    return torch.stack([emb[:1].expand(len(class_ids), -1), emb[1:]], dim=1)


def run_episodes(
    model: nn.Module,
    source: EpisodeSource,
    protocol: EvalConfig | None = None,
    max_episodes: int | None = None,
    progress: bool = True,
    num_workers: int | None = None,
    batch_size: int = 8,
) -> EpisodicResult:
    """Score ``model`` on the served episodes of ``source`` (paper protocol; one loop for every benchmark), at
    ``protocol.episode_size``; with ``protocol.generalised`` also the generalised settings (:func:`generalised`).

    A repeated episode is computed once and counted as often as it is served. ``max_episodes`` keeps the first N
    served episodes (quick runs; the number is then not the paper's). Episodes go through the model
    ``batch_size`` at a time, each with its own label pair; the areas are summed on the model's device.
    """
    protocol = protocol or EvalConfig(protocol="episodic")
    size = protocol.episode_size
    served = list(source.episodes[:max_episodes] if max_episodes is not None else source.episodes)
    counts = Counter(served)
    distinct = list(counts)
    names, k = source.class_names, len(source.class_names)
    device = model_device(model)
    areas = torch.zeros(
        len(distinct), 2, 2, dtype=torch.long, device=device
    )  # episode, (inter, union), bg/fg
    class_ids = sorted({ep.class_id for ep in distinct})
    items = _QueryItems(source, distinct, size, model.config.mean, model.config.std)
    batches = eval_batches(
        items, device, batch_size=batch_size, num_classes=2, ignore_index=IGNORE, num_workers=num_workers
    )
    column = torch.tensor([ep.class_id - 1 for ep in distinct], dtype=torch.long, device=device)
    with (
        eval_mode(model),
        torch.inference_mode(),
        tqdm(total=len(distinct), desc=f"{source.benchmark} fold {source.fold}", disable=not progress) as bar,
    ):
        row = torch.full((k + 1,), -1, dtype=torch.long)
        row[class_ids] = torch.arange(len(class_ids))
        pairs = _episode_texts(model, names, class_ids).to(device) if class_ids else None
        row = row.to(device)
        for index, x, target in batches:
            index = index.to(device)
            logits = model(x.to(device, non_blocking=True), pairs[row[column[index] + 1]])
            i, u = binary_areas(logits.argmax(1), target.to(device, non_blocking=True), check=False)
            areas[index, 0], areas[index, 1] = i, u
            bar.update(len(index))
    areas = areas.cpu()  # the one read of the counts
    weight = torch.tensor([counts[ep] for ep in distinct], dtype=torch.long)
    col = column.cpu()
    inter = torch.zeros(2, k, dtype=torch.long).index_add_(1, col, (areas[:, 0] * weight[:, None]).T)
    union = torch.zeros(2, k, dtype=torch.long).index_add_(1, col, (areas[:, 1] * weight[:, None]).T)
    classes = list(source.class_ids)
    miou, fb_iou = hsnet_scores(inter, union, classes)
    per_ep = Counter(ep.class_id for ep in served)
    order = [distinct.index(ep) for ep in served]  # per served episode, for resampling
    episodes = EpisodeCounts(
        np.array([ep.class_id for ep in served], dtype=np.int64),
        areas[order, 0].numpy(),
        areas[order, 1].numpy(),
    )
    result = EpisodicResult(
        benchmark=source.benchmark,
        fold=source.fold,
        protocol=protocol,
        miou=miou,
        fb_iou=fb_iou,
        per_class_iou={
            names[c - 1]: inter[1, c - 1].item() / max(union[1, c - 1].item(), 1) * 100 for c in classes
        },
        episodes_per_class={names[c - 1]: per_ep[c] for c in classes},
        num_episodes=len(served),
        distinct_episodes=len(counts),
        intersection=inter.numpy(),
        union=union.numpy(),
        episodes=episodes,
        intervals=None
        if not protocol.bootstrap
        else episodic_intervals(
            episodes.class_ids,
            episodes.intersection,
            episodes.union,
            classes,
            protocol.bootstrap,
            protocol.bootstrap_seed,
        ),
        info={**source.info, "served_episodes": len(source.episodes)},
    )
    if protocol.generalised:
        gen = {s: generalised(model, source, s, protocol, max_episodes, progress) for s in ("fold", "all")}
        result = dataclasses.replace(result, generalised=gen)
    return result


def generalised_data(
    source: EpisodeSource, scope: Literal["fold", "all"], image_size: int, model: nn.Module
) -> EvalData:
    """The generalised episodic setting (NOT reported in the paper) as dense data: every distinct query image of
    the fold at ``image_size``, labels ``["others", *classes]`` with ``others`` the background class.
    ``scope="fold"``: the fold's unseen classes compete (pixels of any other class count as "others");
    ``scope="all"``: every class of the benchmark, the fold's unseen and the others seen."""
    if scope not in ("fold", "all"):
        raise InputError(f"scope must be 'fold' or 'all', got {scope!r}")
    names = source.class_names
    scope_ids = list(source.class_ids) if scope == "fold" else list(range(1, len(names) + 1))
    # class map -> label position; classes outside the scope count as "others" (0), void stays void
    lut = torch.zeros(max(len(names), IGNORE) + 1, dtype=torch.long)
    lut[IGNORE] = IGNORE
    position = {c: pos for pos, c in enumerate(scope_ids, 1)}
    for c, pos in position.items():
        lut[c] = pos
    unseen = tuple(position[c] for c in source.class_ids)
    seen = tuple(p for p in range(1, len(scope_ids) + 1) if p not in set(unseen))
    labels = LabelSplit((OTHERS, *(names[c - 1] for c in scope_ids)), seen, unseen, IGNORE, background=0)
    items = _QueryItems(source, source.images, image_size, model.config.mean, model.config.std, lut)
    return EvalData(items, labels, source.benchmark, "val", source.fold)


def generalised(
    model: nn.Module,
    source: EpisodeSource,
    scope: Literal["fold", "all"],
    protocol: EvalConfig,
    max_images: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Score the generalised setting of ``scope`` (:func:`generalised_data`): one confusion matrix over all
    images, single pass at ``protocol.episode_size`` (seen / unseen / harmonic mIoU with ``scope="all"``)."""
    data = generalised_data(source, scope, protocol.episode_size, model)
    data = dataclasses.replace(data, max_images=max_images)
    every = tuple(range(data.labels.num_classes))
    dense = dataclasses.replace(protocol, protocol="dense", mode="single", short_side=None)
    return run_dense(
        model, data, dense, progress=progress, settings=[Setting("all_labels", every, data.labels)]
    )
