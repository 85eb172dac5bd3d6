"""The shared data path: one endless training loader that resumes exactly, checked evaluation batches."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from lseg_nb.data.experiment import SeededDataset
from lseg_nb.data.loading import EpochBatchSampler, eval_batches, resolve_workers, train_loader

CPU = torch.device("cpu")


class RandomAugment(Dataset):
    """Items drawn from the generator a SeededDataset re-seeds per (seed, epoch, index), like train transforms."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.rand(3, 4, 4, generator=self.generator) + i
        return image, torch.full((4, 4), i % 3, dtype=torch.long)


def _seeded(n: int = 10) -> SeededDataset:
    g = torch.Generator()
    return SeededDataset(RandomAugment(n, g), seed=3, generator=g)


def test_epoch_batches_follow_the_distributed_sampler_and_span_epochs():
    sampler = EpochBatchSampler(10, 3, seed=5, world=2, rank=1)
    assert sampler.per_epoch == 1  # 5 indices per rank -> one full batch of 3, the rest dropped
    first = list(itertools.islice(iter(sampler), 3))
    for epoch, batch in enumerate(first):
        ref = DistributedSampler(range(10), 2, 1, shuffle=True, seed=5, drop_last=True)
        ref.set_epoch(epoch)
        assert batch == [(epoch, i) for i in list(ref)[:3]]
    assert first[0] != first[1], "each epoch has its own permutation"


def test_resuming_at_batch_k_continues_the_same_sequence():
    full = list(itertools.islice(iter(EpochBatchSampler(10, 3, seed=0)), 8))  # 3 batches per epoch
    for k in (0, 2, 3, 5):
        resumed = list(itertools.islice(iter(EpochBatchSampler(10, 3, seed=0, start=k)), 8 - k))
        assert resumed == full[k:]


def test_too_few_items_for_one_batch_is_explained():
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(3, 2, seed=0, world=2)


def test_worker_processes_give_the_batches_of_the_main_process():
    """Items travel with their epoch: persistent workers never see set_epoch, yet load what the main process would."""
    batches = {}
    for workers in (0, 2):
        loader = train_loader(_seeded(), 4, seed=1, device=CPU, num_workers=workers, start=1)
        batches[workers] = list(itertools.islice(iter(loader), 5))  # crosses two epoch boundaries
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    data = _seeded()
    [first] = list(itertools.islice(iter(EpochBatchSampler(10, 4, seed=1, start=1)), 1))
    assert torch.equal(batches[0][0][0], torch.stack([data[key][0] for key in first]))


def test_resolve_workers():
    assert resolve_workers(None, CPU) == 0
    assert resolve_workers(3, CPU) == 3
    assert 1 <= resolve_workers(None, torch.device("cuda", 0)) <= 8


class Pairs(Dataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _pair(h: int, w: int, value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(3, h, w), torch.full((h, w), value)


def test_eval_batches_keep_order_indices_and_stack_equal_sizes():
    data = Pairs([_pair(4, 4, v) for v in range(5)])
    out = list(eval_batches(data, CPU, indices=[4, 0, 2], batch_size=2, num_classes=5))
    assert [b[0].tolist() for b in out] == [[4, 0], [2]]
    assert out[0][2].shape == (2, 4, 4) and out[0][2][:, 0, 0].tolist() == [4, 0]


@pytest.mark.parametrize("workers", [0, 1])
def test_eval_batches_name_the_bad_item_also_from_a_worker(workers):
    data = Pairs([_pair(4, 4), _pair(4, 4, 7), _pair(5, 4)])
    with pytest.raises(ValueError, match=r"^dataset\[1\] label holds class indices \[7\] but only 3 labels"):
        list(eval_batches(data, CPU, num_classes=3, num_workers=workers))
    with pytest.raises(ValueError, match=r"^images 0\.\.1 differ in size .*use batch_size=1"):
        list(eval_batches(Pairs([_pair(4, 4), _pair(5, 4)]), CPU, batch_size=2, num_workers=workers))
    with pytest.raises(ValueError, match=r"dataset\[0\] image must be a normalised float"):
        list(eval_batches(Pairs([(torch.zeros(4, 4), torch.zeros(4, 4))]), CPU, num_workers=workers))
