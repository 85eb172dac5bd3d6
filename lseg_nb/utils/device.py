"""Device resolution and mixed precision shared by training, evaluation, prediction and the notebooks."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from lseg_nb.utils.errors import InputError, SetupError

AMP_CHOICES = ("none", "bf16", "fp16")


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
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
