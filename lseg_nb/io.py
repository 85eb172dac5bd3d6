"""Atomic file writes and safe checkpoint loading: nothing half-written, no pickled code executed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    """The process umask; read from /proc where possible, since ``os.umask`` can only be read by setting it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; give the result the mode a plain open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see a partial file."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (the previous file survives a crash mid-write)."""
    _atomic(Path(path), lambda tmp: torch.save(obj, tmp))


def atomic_save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Save a flat tensor dict as safetensors atomically (tensors made contiguous, shared storage split)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(flat, tmp, metadata=metadata))


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``; a file that needs arbitrary pickled objects gets a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign/corrupt files
        raise ValueError(
            f"{path} could not be loaded safely with torch.load(weights_only=True): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. If the file is a trusted checkpoint that stores "
            "Python objects besides tensors, re-save only its tensors (state_dict) in a trusted environment, "
            "or convert it with `lseg-nb convert`."
        ) from None


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a flat tensor dict from ``.safetensors`` or a ``weights_only`` torch file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path} is not a readable safetensors file: {e}") from None
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a flat dict of tensors (a state_dict)")
    return obj
