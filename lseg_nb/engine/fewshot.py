"""PASCAL-5i zero-shot evaluation with the official LSeg protocol (HSNet episode lists and bookkeeping).

Each episode ``<voc_image_id>__<class_id>`` is one query image and one class of its fold. As in the official
``test_lseg_zs.py``: the image is resized to ``480 x 480`` (bilinear, PIL) and normalised with the model's
mean/std (0.5 for ViT, ImageNet statistics for ResNet-101); the VOC mask is resized with nearest neighbour; the
label set is ``["others", <class text>]``; the prediction is the argmax. Per episode, background (0) and
foreground (1) intersections and unions are counted over non-boundary pixels (255 = VOC boundary, ignored) and
accumulated per class; mIoU is the mean foreground IoU over the fold's 5 classes and FB-IoU the mean of
dataset-level background and foreground IoU (HSNet ``AverageMeter``). The official LSeg copy of the PASCAL loader
serves ``min(1000, len(list))`` episodes, i.e. every listed episode once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from lseg_nb.engine.metrics import confusion_matrix

NUM_CLASSES = 20
NUM_FOLDS = 4
IGNORE = 255
MAX_EPISODES = 1000  # the official test loader's cap


@dataclass(frozen=True)
class Episode:
    """One zero-shot query: a VOC image id and a class id in ``1..20`` (VOC order)."""

    image_id: str
    class_id: int


def read_episodes(path: str | Path) -> list[Episode]:
    """Parse an HSNet split list (one ``<voc_image_id>__<class_id>`` per line, e.g. ``2007_000033__01``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"episode list {path} does not exist (expected e.g. splits/pascal/val/fold0.txt)"
        )
    episodes = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        image_id, sep, cls = line.strip().rpartition("__")
        if not sep or not image_id or not cls.isdigit() or not 1 <= int(cls) <= NUM_CLASSES:
            raise ValueError(f"{path}:{lineno}: expected '<voc_image_id>__<class_id 01..20>', got {line!r}")
        episodes.append(Episode(image_id, int(cls)))
    if not episodes:
        raise ValueError(f"episode list {path} is empty")
    return episodes


def fold_class_ids(fold: int) -> list[int]:
    """Unseen classes of PASCAL-5i fold ``fold`` (1-based VOC ids ``5f+1 .. 5f+5``)."""
    if fold not in range(NUM_FOLDS):
        raise ValueError(f"fold must be 0..{NUM_FOLDS - 1}, got {fold}")
    per_fold = NUM_CLASSES // NUM_FOLDS
    return [fold * per_fold + i + 1 for i in range(per_fold)]


def read_label_names(path: str | Path) -> list[str]:
    """The 20 label texts in class-id order (``labels/fewshot_pascal.txt``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist (expected labels/fewshot_pascal.txt)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != NUM_CLASSES:
        raise ValueError(f"{path} has {len(names)} label names; PASCAL-5i needs {NUM_CLASSES}, one per line")
    return names


def find_voc(root: str | Path) -> tuple[Path, Path]:
    """``(JPEGImages, masks)`` folders under ``root``, ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``.

    Masks: ``SegmentationClassAug`` (SBD-augmented, as the official code) or else ``SegmentationClass``; class
    index PNGs with 255 on object boundaries.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"PASCAL VOC root {root} does not exist")
    for base in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        images = base / "JPEGImages"
        masks = next(
            (base / m for m in ("SegmentationClassAug", "SegmentationClass") if (base / m).is_dir()), None
        )
        if images.is_dir() and masks is not None:
            return images, masks
    raise FileNotFoundError(
        f"no PASCAL VOC layout under {root}: expected JPEGImages/ and SegmentationClassAug/ (or "
        "SegmentationClass/) in it, in VOC2012/ or in VOCdevkit/VOC2012/"
    )


def class_target(mask: Tensor, class_id: int) -> Tensor:
    """VOC label map ``(H, W)`` -> binary target: 1 = ``class_id``, 255 = boundary (ignored), 0 = all else."""
    target = (mask == class_id).long()
    target[mask == IGNORE] = IGNORE
    return target


def binary_areas(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Background/foreground intersection and union ``(2,)`` int64 of one episode.

    ``pred``: ``(H, W)`` in {0, 1}; ``target``: ``(H, W)`` in {0, 1, 255}; pixels with target 255 are ignored.
    """
    cm = confusion_matrix(pred, target, num_classes=2, ignore_index=IGNORE)
    inter = cm.diag()
    return inter, cm.sum(0) + cm.sum(1) - inter


def hsnet_scores(inter: Tensor, union: Tensor, class_ids: list[int]) -> tuple[float, float]:
    """``(mIoU, FB-IoU)`` in percent from accumulated ``(2, 20)`` areas (column ``c - 1`` = class ``c``).

    mIoU: mean over ``class_ids`` of foreground intersection / max(union, 1). FB-IoU: mean over background and
    foreground of (summed intersection / summed union) over ``class_ids``.
    """
    cols = torch.tensor([c - 1 for c in class_ids])
    i, u = inter[:, cols].double(), union[:, cols].double()
    miou = (i[1] / u[1].clamp(min=1)).mean().item() * 100
    fb_iou = (i.sum(1) / u.sum(1)).mean().item() * 100
    return miou, fb_iou


def episode_counts(
    num_listed: int, num_episodes: int | None = None, max_episodes: int | None = None
) -> Counter:
    """How often each listed episode is scored: the loader serves ``num_episodes`` (default ``min(1000, n)``)
    episodes cycling through the list; ``max_episodes`` keeps only the first ones (quick runs)."""
    total = min(MAX_EPISODES, num_listed) if num_episodes is None else num_episodes
    if max_episodes is not None:
        total = min(total, max_episodes)
    return Counter(j % num_listed for j in range(total))


def load_episode(
    images: Path, masks: Path, episode: Episode, image_size: int, mean: tuple, std: tuple
) -> tuple[Tensor, Tensor]:
    """Normalised image ``(1, 3, S, S)`` and binary target ``(S, S)`` of one episode, as the official loader."""
    image_path = images / f"{episode.image_id}.jpg"
    mask_path = masks / f"{episode.image_id}.png"
    for p in (image_path, mask_path):
        if not p.is_file():
            raise FileNotFoundError(f"episode {episode.image_id}__{episode.class_id:02d}: {p} does not exist")
    with Image.open(image_path) as im:
        rgb = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    with Image.open(mask_path) as m:
        label = np.array(m)
    if label.ndim != 2:
        raise ValueError(
            f"{mask_path} is not a class-index PNG (shape {label.shape}); use SegmentationClassAug"
        )
    label_t = torch.from_numpy(label.astype(np.int64)).float()[None, None]
    label_t = F.interpolate(label_t, size=(image_size, image_size), mode="nearest")[0, 0].long()
    return x[None], class_target(label_t, episode.class_id)


def evaluate_pascal5i(
    model: nn.Module,
    voc_root: str | Path,
    fold: int,
    split_dir: str | Path,
    labels_file: str | Path,
    max_episodes: int | None = None,
    image_size: int = 480,
    num_episodes: int | None = None,
) -> dict[str, Any]:
    """Zero-shot PASCAL-5i fold score of an :class:`~lseg_nb.models.LSeg` (official LSeg/HSNet protocol).

    ``split_dir`` holds ``fold{fold}.txt``; ``labels_file`` the 20 label texts. Returns mIoU and FB-IoU (percent),
    per-class foreground IoU, the accumulated ``(2, 20)`` intersection/union areas and episode counts.
    """
    episodes = read_episodes(Path(split_dir) / f"fold{fold}.txt")
    classes = fold_class_ids(fold)
    foreign = [e for e in episodes if e.class_id not in classes]
    if foreign:
        raise ValueError(f"fold{fold}.txt lists classes outside fold {fold} ({classes}), e.g. {foreign[0]}")
    names = read_label_names(labels_file)
    images, masks = find_voc(voc_root)
    counts = episode_counts(len(episodes), num_episodes, max_episodes)
    device = next(model.parameters()).device
    inter = torch.zeros(2, NUM_CLASSES, dtype=torch.long)
    union = torch.zeros(2, NUM_CLASSES, dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for index, weight in counts.items():
            ep = episodes[index]
            x, target = load_episode(images, masks, ep, image_size, model.config.mean, model.config.std)
            text = model.encode_text(["others", names[ep.class_id - 1]])
            pred = model(x.to(device), text.to(device)).argmax(1)[0].cpu()
            i, u = binary_areas(pred, target)
            inter[:, ep.class_id - 1] += weight * i
            union[:, ep.class_id - 1] += weight * u
    miou, fb_iou = hsnet_scores(inter, union, classes)
    per_class = {names[c - 1]: inter[1, c - 1].item() / max(union[1, c - 1].item(), 1) * 100 for c in classes}
    per_ep = Counter()
    for index, weight in counts.items():
        per_ep[names[episodes[index].class_id - 1]] += weight
    return {
        "fold": fold,
        "miou": miou,
        "fb_iou": fb_iou,
        "per_class_iou": per_class,
        "episodes_per_class": {names[c - 1]: per_ep[names[c - 1]] for c in classes},
        "num_episodes": sum(counts.values()),
        "image_size": image_size,
        "intersection": inter.tolist(),
        "union": union.tolist(),
    }
