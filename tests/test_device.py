"""Device choice and mixed precision: clear refusals instead of CUDA errors deep in a library."""

from __future__ import annotations

import pytest
import torch

from lseg_nb.utils.device import autocast, resolve_device


def _fake_gpus(monkeypatch, count: int) -> None:
    # torch's CUDA queries, not lseg_nb code: a 1-GPU workstation simulated on a CPU-only machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_more_ranks_than_gpus_is_refused_naming_the_fix(monkeypatch):
    _fake_gpus(monkeypatch, 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for name in ("auto", "cuda"):
        with pytest.raises(RuntimeError, match=r"LOCAL_RANK=1 .* only 1 GPU.*nproc_per_node 1.*--device cpu"):
            resolve_device(name)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)  # an explicit index is the user's choice


def test_auto_picks_the_local_rank_gpu_or_the_cpu(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cuda", 1)
    _fake_gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available.*--device cpu"):
        resolve_device("cuda")


def test_autocast_choices():
    cpu = torch.device("cpu")
    with autocast("bf16", cpu):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("none", cpu):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="fp16.*CUDA.*bf16"):
        autocast("fp16", cpu)
    with pytest.raises(ValueError, match="amp must be one of"):
        autocast("float16", cpu)
