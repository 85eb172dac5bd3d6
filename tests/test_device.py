"""Device choice and mixed precision: clear refusals instead of CUDA errors deep in a library; CPU speed hints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lseg_nb.utils.device import (
    autocast,
    bf16_hint,
    cpu_has_native_bf16,
    own_load,
    resolve_device,
    thread_hint,
)


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


def test_thread_hint_fires_only_when_other_work_leaves_fewer_cores_than_threads():
    busy = thread_hint(load=9.5, cores=2, threads=2)
    assert busy is not None and "load average 9.5 from other work on 2 cores" in busy and "2 threads" in busy
    assert "OMP_NUM_THREADS=1 " in busy and "torch.set_num_threads(1)" in busy
    assert thread_hint(load=0.3, cores=2, threads=2) is None  # an idle machine: the default is right
    assert thread_hint(load=9.5, cores=2, threads=1) is None  # already one thread
    assert "OMP_NUM_THREADS=5 " in thread_hint(load=3.0, cores=8, threads=8)  # the cores left idle
    assert thread_hint(load=3.0, cores=8, threads=5) is None


def test_own_load_is_the_exponential_average_of_this_process_work():
    """The kernel's 1-minute load average: steady work at rate r for t seconds adds r * (1 - exp(-t / 60))."""
    assert own_load(60.0, 60.0) == pytest.approx(1 - math.exp(-1), rel=1e-12)
    assert own_load(240.0, 120.0) == pytest.approx(2 * (1 - math.exp(-2)), rel=1e-12)  # two busy threads
    assert own_load(0.0, 30.0) == 0.0 and own_load(1.0, 0.0) == 0.0


def test_bf16_hint_only_for_emulated_bf16_on_the_cpu():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert "without native bfloat16" in bf16_hint("bf16", cpu, native_bf16=False)
    assert bf16_hint("bf16", cpu, native_bf16=True) is None
    assert bf16_hint("none", cpu, native_bf16=False) is None
    assert bf16_hint("bf16", gpu, native_bf16=False) is None


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    flags = Path("/proc/cpuinfo")
    if not flags.is_file():
        pytest.skip("no /proc/cpuinfo to compare with (not Linux)")
    words = set(flags.read_text().split())
    assert cpu_has_native_bf16() == bool(words & {"avx512_bf16", "amx_bf16", "amx_tile"})


def test_bf16_on_a_gpu_without_bfloat16_is_refused(monkeypatch):
    # torch's CUDA query, not lseg_nb code: an older GPU simulated on a CPU-only machine
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ValueError, match=r"amp='bf16' but cuda:0 has no bfloat16 support: use amp='fp16'"):
        autocast("bf16", torch.device("cuda", 0))
