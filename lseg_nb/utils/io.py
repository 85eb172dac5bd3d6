"""Atomic file writes and safe checkpoint loading: nothing half-written, no pickled code executed."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
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


def _fsync(path: str | Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders; the data itself was synced
        pass
    finally:
        os.close(fd)


def _atomic(path: Path, write: Any) -> None:
    """Write via ``.<name>.<random>.tmp`` in the same folder, fsync, rename over ``path``, fsync the folder:
    readers see the old or the new file, never a partial one, even after a power loss."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(
            f"cannot write {path}: {e.strerror or e} (check the folder exists, is writable and the disk has space)"
        ) from None
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; give the result the mode a plain open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise OSError(
                f"cannot write {path}: {e.strerror or e} (disk full or folder not writable?)"
            ) from None
        raise


def clean_stale_tmp(folder: str | Path, min_age_s: float = 0.0) -> list[Path]:
    """Remove ``.<name>.*.tmp`` files left in ``folder`` by a crash mid-write (older than ``min_age_s``)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.glob(".*.tmp"):
        try:
            if p.is_file() and now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def check_output_path(path: str | Path, what: str = "output") -> Path:
    """Make sure ``path`` can be written (before any long work): not a folder, no file among its parents, a
    writable parent folder (created when missing). Errors name the path and the reason."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file path, e.g. {path / 'result'}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"{what} {path} lies below {parent}, which is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the folder of {what} {path}: {e.strerror or e}") from None
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"cannot write {what} {path}: its folder {path.parent} is not writable")
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure folder ``path`` exists (created when missing) and can be written, before any long work: not a
    file, no file among its parents, writable. Errors name the path and the reason."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"lies below {p}, which is a file"
            raise NotADirectoryError(f"{what} {path} {where}, not a folder: choose another folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create {what} {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write into {what} {path}: the folder is not writable (check its permissions)"
        )
    return path


def atomic_save_figure(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically (format from the suffix, tight bounding box)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt))


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


def atomic_save_npy(array: Any, path: str | Path) -> None:
    """``numpy.save`` an array to ``path`` atomically (no pickled objects: ``allow_pickle=False``)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the temporary name
            np.save(f, np.asarray(array), allow_pickle=False)

    _atomic(Path(path), write)
