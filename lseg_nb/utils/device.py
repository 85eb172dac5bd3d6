"""Device resolution and mixed precision shared by training, evaluation, prediction and the notebooks.

CPU speed hints (:func:`thread_hint`, :func:`bf16_hint`, :func:`cpu_training_hints`): two settings make CPU
training several times slower without any error. (1) torch starts one intra-op thread per core; when other work
already keeps the cores busy, every parallel op waits for its slowest, descheduled thread (issue 20 reports 3-5 s
per step with the default thread count vs 1.24 s with one thread on a busy CPU). (2) bf16 autocast is faster only
on CPUs with native bf16 (AVX512-BF16 or AMX; issue 20 reports 1.35-1.5x faster steps there); elsewhere torch
emulates it with conversions (measurements in ``benchmarks/RESULTS.md``). Both hints are pure functions of what
was measured, printed once when training starts; the run itself is not changed (thread counts are the user's).
"""

from __future__ import annotations

import math
import os
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from lseg_nb.utils.errors import InputError, SetupError

AMP_CHOICES = ("none", "bf16", "fp16")
THREADS_FIX = "set OMP_NUM_THREADS={n} before starting (or torch.set_num_threads({n}) in a notebook)"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available (else CPU); any other name as given.

    Under ``torchrun`` with more processes on a node than visible GPUs, ``auto`` and ``cuda`` refuse with a
    message naming the fix instead of failing later with "invalid device ordinal".
    """
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SetupError(f"device={name!r} but CUDA is not available here: use --device cpu")
        if device.index is None:
            local = int(os.environ.get("LOCAL_RANK", 0))
            count = torch.cuda.device_count()
            if local >= count:
                raise SetupError(
                    f"process LOCAL_RANK={local} needs GPU {local} but only {count} GPU(s) are visible: start "
                    f"at most {count} processes per node (torchrun --nproc_per_node {count}) or use --device cpu"
                )
            device = torch.device("cuda", local)
    return device


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a module with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def autocast(amp: str, device: torch.device) -> AbstractContextManager:
    """Autocast context for ``amp`` on ``device``: ``none`` (float32), ``bf16`` (CUDA and CPU) or ``fp16`` (not
    on CPU). Raises ``ValueError`` naming the fix for an unknown choice or fp16 on the CPU."""
    if amp not in AMP_CHOICES:
        raise InputError(f"amp must be one of {list(AMP_CHOICES)}, got {amp!r}")
    if amp == "none":
        return nullcontext()
    if amp == "fp16" and device.type == "cpu":
        raise InputError("amp='fp16' needs a CUDA device; use amp='bf16' or 'none' on CPU")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"amp='bf16' but {device} has no bfloat16 support: use amp='fp16' or 'none' there")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), which makes bf16 autocast pay off."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def own_load(cpu_seconds: float, wall_seconds: float) -> float:
    """This process's share of the 1-minute load average after using ``cpu_seconds`` of CPU (all threads) in the
    last ``wall_seconds``: the kernel's load average is an exponential average with a 60 s time constant, so
    work at a steady rate ``r`` for ``t`` seconds adds ``r * (1 - exp(-t / 60))``.

    Args:
        cpu_seconds: CPU time this process used in the window (``time.process_time()`` difference).
        wall_seconds: the window's wall time.
    """
    if wall_seconds <= 0:
        return 0.0
    return cpu_seconds / wall_seconds * (1 - math.exp(-wall_seconds / 60))


def thread_hint(load: float, cores: int, threads: int) -> str | None:
    """The hint to print when torch's ``threads`` exceed the cores that other work leaves idle, else ``None``.

    Args:
        load: the 1-minute load average of other work (this process's own share, :func:`own_load`, removed).
        cores: CPU cores this process may run on.
        threads: torch's intra-op threads (``torch.get_num_threads()``).
    """
    idle = max(1, math.floor(cores - load + 0.5))  # cores other work leaves free, at least one
    if threads <= idle:
        return None
    return (
        f"the CPU is busy (load average {load:.1f} from other work on {cores} cores) and torch uses {threads} "
        "threads: each "
        "parallel op then waits for descheduled threads, which can make training steps several times slower "
        f"than with {idle} thread{'s' if idle > 1 else ''}; " + THREADS_FIX.format(n=idle)
    )


def bf16_hint(amp: str, device: torch.device, native_bf16: bool) -> str | None:
    """The hint to print for bf16 autocast on a CPU without native bf16 (emulated: slower), else ``None``.

    Args:
        amp: the autocast choice (``none``, ``bf16``, ``fp16``).
        device: the training device.
        native_bf16: :func:`cpu_has_native_bf16` of this machine.
    """
    if amp != "bf16" or device.type != "cpu" or native_bf16:
        return None
    return (
        "amp='bf16' on a CPU without native bfloat16 (no AVX512-BF16/AMX): torch emulates it, so training is "
        "slower than with amp='none' here; bf16 pays off on CPUs with AVX512-BF16/AMX and on GPUs"
    )


def cpu_training_hints(amp: str, device: torch.device, own: float = 0.0) -> list[str]:
    """:func:`thread_hint` and :func:`bf16_hint` for this machine now (nothing on a GPU).

    Args:
        amp: the run's autocast choice.
        device: the training device.
        own: this process's own share of the load average (:func:`own_load` of the work before training).

    ``LSEG_NB_CPU_HINTS=0`` silences them (scripted runs, and the test suite, whose output must not depend on
    what else the machine is doing).
    """
    if device.type != "cpu" or os.environ.get("LSEG_NB_CPU_HINTS", "1") == "0":
        return []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = max(0.0, os.getloadavg()[0] - own) if hasattr(os, "getloadavg") else 0.0
    hints = [thread_hint(load, cores, torch.get_num_threads()), bf16_hint(amp, device, cpu_has_native_bf16())]
    return [h for h in hints if h]
