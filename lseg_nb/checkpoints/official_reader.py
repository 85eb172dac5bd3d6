"""Safe reading of official LSeg checkpoints: ``weights_only=True`` and no code from the file ever runs.

The official files are PyTorch-Lightning ``.ckpt`` pickles. Besides tensors they hold a few Lightning objects
(callback keys, the ``AttributeDict`` of hyper-parameters), which ``weights_only=True`` refuses. A static scan
of the pickle finds those globals; Lightning's own (and ``argparse.Namespace``) are mapped to inert stand-ins
that keep their state and run nothing, anything else is refused with a message saying how to re-save the
tensors. Lightning itself is never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import load_tensors, user_path

_LIGHTNING = ("pytorch_lightning.", "lightning.", "lightning_fabric.")
_RESAVE = (
    "If you trust the file, re-save only its tensors in a trusted environment: "
    "ck = torch.load(path, map_location='cpu', weights_only=False); "
    "torch.save({'state_dict': ck['state_dict']}, 'weights.pt'); then load weights.pt."
)


def preview(names: list[str], n: int = 8) -> str:
    shown = ", ".join(names[:n])
    return f"{shown}{f', ... ({len(names)} in all)' if len(names) > n else ''}"


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


class _Inert:
    """Stand-in for a Lightning/argparse object during weights-only loading: keeps its state, runs no code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


def _stub(name: str) -> Any:
    if name.endswith(".AttributeDict"):
        return dict
    module, _, qualname = name.rpartition(".")
    return type(qualname, (_Inert,), {"__module__": module})


def _torch_load(path: Path) -> Any:
    # mmap: optimizer states in Lightning files are never read from disk.
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, ValueError) as e:
        if "mmap" not in str(e):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_with_stand_ins(path: Path, first: str) -> Any:
    """Second try after a refused plain load (``first``: its error): Lightning globals become stand-ins."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        unsafe = scan(str(path)) if scan else []
    except Exception:  # noqa: BLE001
        raise InputError(
            f"{path} is not a readable PyTorch checkpoint ({first}). A truncated download or another file "
            "format? Compare its size/checksum with the original and download it again."
        ) from None
    foreign = [g for g in unsafe if not (g.startswith(_LIGHTNING) or g == "argparse.Namespace")]
    if foreign or not unsafe:
        raise InputError(
            f"{path} could not be loaded with weights_only=True ({preview(foreign, 5) or first}). {_RESAVE}"
        )
    try:
        with torch.serialization.safe_globals([(_stub(g), g) for g in unsafe]):
            return _torch_load(path)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path} could not be loaded safely ({first_line(e)}). {_RESAVE}") from None


def read_checkpoint(path: str | Path) -> Any:
    """Load a ``.ckpt``/``.pt``/``.safetensors`` with ``weights_only=True``.

    PyTorch-Lightning's own classes (callback keys, ``AttributeDict``) are mapped to inert stand-ins, found by
    statically scanning the pickle; any other Python object refuses to load with a ``ValueError`` saying how to
    re-save the tensors. Corrupt, truncated or foreign files raise ``ValueError`` too.
    """
    path = user_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return load_tensors(path)
    try:
        return _torch_load(path)
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign/corrupt files
        first = first_line(e)
    return _load_with_stand_ins(path, first)


def split_checkpoint(obj: Any, source: str = "checkpoint") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, hyper_parameters)`` of a Lightning checkpoint dict, or a bare state dict with ``{}``."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        sd, hp = obj["state_dict"], obj.get("hyper_parameters")
    elif isinstance(obj, dict):
        sd, hp = obj, None
    else:
        raise InputError(f"{source} holds a {type(obj).__name__}, not a checkpoint dict with a state_dict")
    if isinstance(hp, _Inert):
        hp = hp.__dict__.get("state")
    return sd, hp if isinstance(hp, dict) else {}
