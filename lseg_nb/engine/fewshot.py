"""The LSeg paper's benchmark protocols: episodic zero-shot (PASCAL-5i, COCO-20i, FSS-1000), the generalised
setting (not in the paper) and ADE20K-150 fixed-label evaluation.

Episodic zero-shot (the paper's numbers; official ``test_lseg_zs.py`` with the HSNet loaders, ``--nshot 0``): each
episode is one query image and one unseen class of the fold. The image is resized to ``480 x 480`` (PIL
bilinear) and normalised with the model's mean/std (0.5 for ViT, ImageNet statistics for ResNet-101); the mask is
resized with nearest neighbour; the label set is ``["others", <class text>]``; the prediction is the argmax. Per
episode, background (0) and foreground (1) intersections and unions are counted over non-void pixels (255 = VOC
boundary) and summed per class over the fold. mIoU is the mean foreground IoU over the fold's classes and FB-IoU
the mean of the fold-level background and foreground IoU (HSNet ``AverageMeter``). Which episodes are served is the
adapter's business (:mod:`lseg_nb.data.benchmarks`): PASCAL every listed episode once (``min(1000, n)``), COCO 1000
seeded draws, FSS every test image once. Results are in percent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lseg_nb.config import OFFICIAL_EVAL
from lseg_nb.data.benchmarks import ade20k, coco20i, fss1000, pascal5i
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
from lseg_nb.engine.evaluate import EvalResult, evaluate
from lseg_nb.engine.inference import embed_padded, eval_mode, protocol_kwargs
from lseg_nb.engine.metrics import compute_metrics, confusion_matrices, confusion_matrix
from lseg_nb.utils.device import model_device

EPISODIC = "episodic binary zero-shot (paper protocol: HSNet episodes, ['others', class], 480x480)"


def binary_areas(pred: Tensor, target: Tensor, check: bool = True) -> tuple[Tensor, Tensor]:
    """Background/foreground intersection and union (int64) of one episode, or of a batch of episodes.

    ``pred``: ``(..., H, W)`` in {0, 1}; ``target``: ``(..., H, W)`` in {0, 1, 255}; pixels with target 255 are
    ignored. Returns two ``(..., 2)`` tensors on the inputs' device (``(2,)`` for one episode). ``check=False``
    skips the host-side range check of ``pred`` (for an argmax over two labels).
    """
    lead, hw = pred.shape[:-2], pred.shape[-2:]
    if target.shape != pred.shape or len(hw) != 2:
        raise ValueError(
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


def evaluate_episodes(
    model: nn.Module,
    source: EpisodeSource,
    image_size: int = 480,
    max_episodes: int | None = None,
    progress: bool = True,
    batch_size: int = 8,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Score ``model`` on the served episodes of ``source`` (paper protocol; one loop for every benchmark).

    A repeated episode is computed once and counted as often as it is served. ``max_episodes`` keeps the first N
    served episodes (quick runs; the number is then not the paper's). Returns mIoU and FB-IoU (percent), per-class
    foreground IoU, episodes per class, the accumulated ``(2, C)`` intersection/union and ``source.info``.
    Episodes go through the model ``batch_size`` at a time, each with its own label pair; queries are loaded by
    :func:`~lseg_nb.data.loading.eval_batches` (``num_workers``); the areas are summed on the model's device.
    """
    served = list(source.episodes[:max_episodes] if max_episodes is not None else source.episodes)
    counts = Counter(served)
    distinct = list(counts)
    names, k = source.class_names, len(source.class_names)
    device = model_device(model)
    inter = torch.zeros(2, k, dtype=torch.long, device=device)
    union = torch.zeros(2, k, dtype=torch.long, device=device)
    weight = torch.tensor([counts[ep] for ep in distinct], dtype=torch.long, device=device)
    column = torch.tensor([ep.class_id - 1 for ep in distinct], dtype=torch.long, device=device)
    class_ids = sorted({ep.class_id for ep in distinct})
    items = _QueryItems(source, distinct, image_size, model.config.mean, model.config.std)
    batches = eval_batches(
        items, device, batch_size=batch_size, num_classes=2, ignore_index=IGNORE, num_workers=num_workers
    )
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
            col = column[index]
            logits = model(x.to(device, non_blocking=True), pairs[row[col + 1]])
            i, u = binary_areas(logits.argmax(1), target.to(device, non_blocking=True), check=False)
            w = weight[index][:, None]
            inter.index_add_(1, col, (i * w).T)
            union.index_add_(1, col, (u * w).T)
            bar.update(len(index))
    inter, union = inter.cpu(), union.cpu()  # the one read of the counts
    classes = list(source.class_ids)
    miou, fb_iou = hsnet_scores(inter, union, classes)
    per_ep = Counter(ep.class_id for ep in served)
    return {
        "benchmark": source.benchmark,
        "fold": source.fold,
        "protocol": EPISODIC,
        "miou": miou,
        "fb_iou": fb_iou,
        "per_class_iou": {
            names[c - 1]: inter[1, c - 1].item() / max(union[1, c - 1].item(), 1) * 100 for c in classes
        },
        "episodes_per_class": {names[c - 1]: per_ep[c] for c in classes},
        "num_episodes": len(served),
        "distinct_episodes": len(counts),
        "image_size": image_size,
        "intersection": inter.tolist(),
        "union": union.tolist(),
        **source.info,
    }


def evaluate_pascal5i(
    model: nn.Module,
    voc_root: str | Path,
    fold: int,
    split_dir: str | Path,
    labels_file: str | Path | None = None,
    max_episodes: int | None = None,
    image_size: int = 480,
    num_episodes: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Zero-shot PASCAL-5i fold score (paper protocol). ``split_dir`` holds HSNet's ``val/fold<f>.txt`` lists;
    ``labels_file`` defaults to the paper's label texts. See :func:`evaluate_episodes` for the result."""
    source = pascal5i.episode_source(voc_root, fold, split_dir, labels_file, num_episodes)
    return evaluate_episodes(model, source, image_size, max_episodes, progress)


def evaluate_coco20i(
    model: nn.Module,
    coco_root: str | Path,
    fold: int,
    classwise: str | Path | None = None,
    seed: int = 0,
    num_episodes: int | None = None,
    max_episodes: int | None = None,
    image_size: int = 480,
    labels_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Zero-shot COCO-20i fold score (paper protocol: 1000 seeded episodes; seed 0 is the official test's)."""
    source = coco20i.episode_source(coco_root, fold, classwise, seed, num_episodes, labels_file)
    return evaluate_episodes(model, source, image_size, max_episodes, progress)


def evaluate_fss1000(
    model: nn.Module,
    fss_root: str | Path,
    labels_file: str | Path | None = None,
    max_episodes: int | None = None,
    image_size: int = 480,
    progress: bool = True,
) -> dict[str, Any]:
    """Zero-shot FSS-1000 score (paper protocol: every image of the 240 test classes once)."""
    return evaluate_episodes(
        model, fss1000.episode_source(fss_root, labels_file), image_size, max_episodes, progress
    )


def evaluate_source(
    model: nn.Module,
    source: EpisodeSource,
    generalised: bool = False,
    image_size: int = 480,
    max_episodes: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate_episodes` (the paper's protocol), plus with ``generalised`` the generalised setting for
    ``scope`` ``fold`` and ``all`` under ``result["generalised"]`` (not reported in the paper). Sources of a
    benchmark fold: :func:`lseg_nb.data.benchmarks.registry.episode_source`."""
    result = evaluate_episodes(model, source, image_size, max_episodes, progress)
    if generalised:
        result["generalised"] = {
            scope: evaluate_generalised(model, source, scope, image_size, max_episodes, progress)
            for scope in ("fold", "all")
        }
    return result


def _argmax_chunked(model: nn.Module, x: Tensor, text: Tensor, chunk: int) -> Tensor:
    """Argmax over many labels without a ``(K, H, W)`` logit tensor: labels in chunks, running maximum.

    Ties keep the lowest label index, as ``argmax`` does.
    """
    h, w = x.shape[-2:]
    emb, size = embed_padded(model, x)
    best_val, best_idx = None, None
    for start in range(0, text.shape[0], chunk):
        logits = model.logits_from_embeddings(emb, text[start : start + chunk], size)[0, :, :h, :w]
        val, idx = logits.max(0)
        idx = idx + start
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val
            best_val, best_idx = torch.where(better, val, best_val), torch.where(better, idx, best_idx)
    return best_idx


def evaluate_generalised(
    model: nn.Module,
    source: EpisodeSource,
    scope: Literal["fold", "all"] = "fold",
    image_size: int = 480,
    max_images: int | None = None,
    progress: bool = True,
    label_chunk: int = 64,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Generalised setting (NOT reported in the paper): several labels compete at once on each query image.

    Every distinct query image of the fold is scored once at ``image_size``. ``scope="fold"``: the label set is
    ``["others", *the fold's unseen classes]`` and pixels of any other class count as "others". ``scope="all"``:
    ``["others", *every class of the benchmark]``; seen classes (outside the fold) compete too, so unseen IoU drops
    where the model prefers seen labels. Scores come from one confusion matrix over all images (percent):
    ``miou_unseen`` over the fold's classes, ``miou_seen`` and the harmonic mean ``hiou`` (``scope="all"`` only),
    ``others_iou``, pixel accuracy and per-class IoU (NaN where a class is neither present nor predicted).
    """
    if scope not in ("fold", "all"):
        raise ValueError(f"scope must be 'fold' or 'all', got {scope!r}")
    names = source.class_names
    scope_ids = list(source.class_ids) if scope == "fold" else list(range(1, len(names) + 1))
    labels = [OTHERS] + [names[c - 1] for c in scope_ids]
    # class map -> label position; classes outside the scope count as "others" (0), void stays void
    lut = torch.zeros(max(len(names), IGNORE) + 1, dtype=torch.long)
    lut[IGNORE] = IGNORE
    position = {c: pos for pos, c in enumerate(scope_ids, 1)}
    for c, pos in position.items():
        lut[c] = pos
    images = source.images[:max_images] if max_images is not None else source.images
    device = model_device(model)
    cm = torch.zeros(len(labels), len(labels), dtype=torch.long, device=device)
    items = _QueryItems(source, images, image_size, model.config.mean, model.config.std, lut)
    batches = eval_batches(items, device, num_classes=len(labels), num_workers=num_workers)
    with eval_mode(model), torch.inference_mode():
        text = model.encode_text(labels).to(device)
        for _, x, target in tqdm(
            batches, total=len(images), desc=f"{source.benchmark} generalised ({scope})", disable=not progress
        ):
            pred = _argmax_chunked(model, x.to(device, non_blocking=True), text, label_chunk)
            cm += confusion_matrix(
                pred[None], target.to(device, non_blocking=True), len(labels), IGNORE, False
            )
    cm = cm.cpu()
    unseen = [position[c] for c in source.class_ids]
    seen = [p for p in range(1, len(labels)) if p not in set(unseen)] if scope == "all" else None
    m = compute_metrics(cm, labels, seen=seen, unseen=unseen if seen is not None else None, background=0)
    pct = [v * 100 for v in m.per_class_iou]
    unseen_iou = torch.tensor([pct[p] for p in unseen], dtype=torch.float64)
    return {
        "benchmark": source.benchmark,
        "fold": source.fold,
        "protocol": f"generalised ({scope} labels at once) - not reported in the paper",
        "labels": labels,
        "num_images": len(images),
        "image_size": image_size,
        "miou_unseen": unseen_iou.nanmean().item(),
        "miou_seen": m.seen_miou * 100 if m.seen_miou is not None else None,
        "hiou": m.harmonic_iou * 100 if m.harmonic_iou is not None else None,
        "others_iou": pct[0],
        "pixel_acc": m.pixel_acc * 100,
        "per_class_iou": dict(zip(labels, pct, strict=True)),
        "confusion": cm.tolist(),
        **source.info,
    }


def evaluate_ade20k(
    model: nn.Module,
    ade_root: str | Path,
    split: str = "validation",
    max_images: int | None = None,
    progress: bool = True,
    **overrides: Any,
) -> EvalResult:
    """ADE20K-150 fixed-label mIoU and pixel accuracy with the official multi-scale protocol.

    All 150 labels compete; "other" pixels are void. Inference: :data:`lseg_nb.config.OFFICIAL_EVAL` (long side
    ``ceil(520 * s)`` for s in 0.5..1.75, flip, sliding windows of ``model.config.crop_size`` = 480 for the paper
    models, stride 2/3); ``overrides`` replace any of it (keyword arguments of ``predict_logits``).
    """
    dataset = ade20k.ADE20KDataset(ade_root, model.config.mean, model.config.std, split, max_images)
    protocol = protocol_kwargs(OFFICIAL_EVAL, model.config.crop_size)
    return evaluate(model, dataset, ade20k.ade20k_labels(), progress=progress, **{**protocol, **overrides})
