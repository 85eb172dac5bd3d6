"""The one data path of training and evaluation: DataLoaders with worker processes on a GPU, pinned memory, and
checked items.

* :func:`train_loader`: endless shuffled full batches of a :class:`~lseg_nb.data.experiment.SeededDataset` from
  ONE loader whose batch sampler (:class:`EpochBatchSampler`) spans epochs, so worker processes live for the whole
  run. Epoch ``e`` is the ``DistributedSampler`` permutation with seed ``seed + e`` (sharded over ranks); each
  index travels with its epoch, so items stay a pure function of (seed, epoch, index) in any worker, and a run
  resumed at batch ``start`` sees exactly the batches an uninterrupted one would.
* :func:`eval_batches`: one pass over (part of) a dataset of ``(image, label)`` items in order, each item
  checked (shapes, dtypes, class range) where it is loaded, with the failing index and the fix in the message.

``num_workers=None`` means 0 (load in the main process) on the CPU, where worker processes would only compete
with the model for the cores, and ``min(8, CPUs)`` on a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from lseg_nb.utils.errors import InputError
from lseg_nb.utils.interrupt import ignore_interrupts


def resolve_workers(num_workers: int | None, device: torch.device) -> int:
    """Worker processes for ``device``: ``num_workers`` as given, or automatic (0 on CPU, ``min(8, CPUs)``)."""
    if num_workers is not None:
        return int(num_workers)
    return min(8, os.cpu_count() or 1) if device.type != "cpu" else 0


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless full batches of ``(epoch, index)`` pairs over ``size`` items, starting at batch ``start``.

    Epoch ``e`` is ``DistributedSampler(shuffle=True, seed=seed, drop_last=True)`` at epoch ``e`` for this
    ``rank`` of ``world`` (``world=1``: ``randperm(size)`` seeded with ``seed + e``), cut into full batches; the
    ``start`` batches already seen are skipped without being loaded.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, world: int = 1, rank: int = 0, start: int = 0
    ) -> None:
        self.order = DistributedSampler(range(size), world, rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size, self.start = batch_size, start
        if len(self.order) < batch_size:
            raise InputError(
                f"the training split has {size} images, fewer than one batch ({batch_size}) per process: "
                "lower batch_size or raise max_images"
            )
        self.per_epoch = len(self.order) // batch_size

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The full batches of ``epoch`` (indices only)."""
        self.order.set_epoch(epoch)
        idx = list(self.order)
        return [
            idx[i : i + self.batch_size] for i in range(0, self.per_epoch * self.batch_size, self.batch_size)
        ]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            for batch in self.epoch_batches(epoch)[skip:]:
                yield [(epoch, i) for i in batch]
            epoch, skip = epoch + 1, 0


def train_loader(
    data: Dataset,
    batch_size: int,
    seed: int,
    device: torch.device,
    *,
    world: int = 1,
    rank: int = 0,
    start: int = 0,
    num_workers: int | None = None,
) -> DataLoader:
    """Endless batches of a dataset indexed by ``(epoch, index)`` (a ``SeededDataset``); see the module docstring.

    Pinned memory on CUDA (copy with ``non_blocking=True``); workers persist for the loader's life and ignore
    Ctrl-C, which the training loop handles at a step boundary (:class:`~lseg_nb.utils.interrupt.StopRequest`).
    """
    workers = resolve_workers(num_workers, device)
    return DataLoader(
        data,
        batch_sampler=EpochBatchSampler(len(data), batch_size, seed, world, rank, start),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=ignore_interrupts if workers > 0 else None,
    )


@dataclass(frozen=True)
class _Failed:
    """An item that could not be loaded or checked; raised again in the main process, unwrapped."""

    error: BaseException


class _CheckedItems(Dataset):
    def __init__(
        self, dataset: Dataset, indices: Sequence[int], num_classes: int | None, ignore: int
    ) -> None:
        self.dataset, self.indices, self.num_classes, self.ignore = dataset, indices, num_classes, ignore

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> Any:
        i = int(self.indices[j])
        try:
            return (i, *check_item(self.dataset[i], i, self.num_classes, self.ignore))
        except Exception as e:  # noqa: BLE001 - sent to the main process and raised there as it was
            return _Failed(e)


def check_item(
    item: Any, i: int, num_classes: int | None = None, ignore_index: int = 255
) -> tuple[Tensor, ...]:
    """``dataset[i]`` as ``(image float (3, H, W), label int64 (H, W), *extras)``, or a ``ValueError`` naming
    the item; with ``num_classes``, label values must be class indices ``< num_classes`` or ``ignore_index``."""
    if not isinstance(item, tuple | list) or len(item) < 2:
        raise InputError(f"dataset[{i}] must be (image, label), got {type(item).__name__}")
    image, label = torch.as_tensor(item[0]), torch.as_tensor(item[1])
    if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise InputError(
            f"dataset[{i}] image must be a normalised float (3, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )
    if label.shape != image.shape[1:] or label.is_floating_point():
        raise InputError(
            f"dataset[{i}] label must be an integer (H, W) = {tuple(image.shape[1:])} tensor, got {label.dtype} {tuple(label.shape)}"
        )
    label = label.long()
    if num_classes is not None:
        bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
        if bad.any():
            values = sorted(set(label[bad].tolist()))[:10]
            raise InputError(
                f"dataset[{i}] label holds class indices {values} but only {num_classes} labels were given "
                f"(valid: 0..{num_classes - 1}, {ignore_index} = void): pass one label text per class index"
            )
    return (image, label, *(torch.as_tensor(x) for x in item[2:]))


def _collate(items: list[Any]) -> Any:
    failed = next((it for it in items if isinstance(it, _Failed)), None)
    if failed is not None:
        return failed
    sizes = sorted({tuple(it[1].shape) for it in items})
    if len(sizes) > 1:
        first, last = items[0][0], items[-1][0]
        return _Failed(InputError(f"images {first}..{last} differ in size {sizes}: use batch_size=1"))
    return (torch.tensor([it[0] for it in items]), *(torch.stack(col) for col in list(zip(*items))[1:]))


def eval_batches(
    dataset: Dataset,
    device: torch.device,
    *,
    indices: Sequence[int] | None = None,
    batch_size: int = 1,
    num_classes: int | None = None,
    ignore_index: int = 255,
    num_workers: int | None = None,
) -> Iterator[tuple[Tensor, ...]]:
    """Batches ``(indices (B,), images (B, 3, H, W), labels (B, H, W), *extras)`` of ``dataset`` in order.

    ``indices``: the items to visit (default all). Items are checked by :func:`check_item` in the process that
    loads them; a bad item or a batch of mixed sizes raises its error here, as the main process would. Pinned
    memory on CUDA, ``num_workers`` as in :func:`resolve_workers`.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    indices = range(len(dataset)) if indices is None else indices
    workers = min(resolve_workers(num_workers, device), len(indices))
    loader = DataLoader(
        _CheckedItems(dataset, indices, num_classes, ignore_index),
        batch_size=batch_size,
        collate_fn=_collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    for batch in loader:
        if isinstance(batch, _Failed):
            raise batch.error
        yield batch
