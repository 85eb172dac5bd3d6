"""Paths, atomic file writes and safe checkpoint loading: nothing half-written, no pickled code executed, no
path built from data leaving its root.

Paths from the user (flags, config fields such as ``run_dir``/``data_root``) go through :func:`user_path`, so
``~`` means the home folder in every one of them. Paths built from data (a manifest's folders and suffixes, a
split's ids, label texts and model specs in output names) go through :func:`inside` / :func:`relative_part` /
:func:`file_stem`: a relative part may not be absolute, name a drive or hold a ``..`` component, and this is
checked before anything is read or created. The check is lexical: symbolic links that the owner of a data root
placed inside it are followed, as everywhere else.

numpy, torch and PIL are imported inside the few functions that use them: the configs write JSON through this
module, and ``lseg-nb --help`` or ``lseg-nb COMMAND --help`` must not pay torch's seconds of import.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import time
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from lseg_nb.utils.errors import InputError, shorten

if TYPE_CHECKING:
    import numpy as np
    import torch

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def user_path(path: str | os.PathLike) -> Path:
    """A path given by the user (a flag, a config field) as a :class:`Path`, ``~`` / ``~user`` expanded."""
    return Path(os.path.expanduser(os.fspath(path)))


def relative_part(value: str, what: str, root: str = "its folder") -> str:
    """``value`` unchanged when it is a relative path that stays below ``root`` (what it is joined to): not empty,
    not absolute, no drive, no ``..`` component, no NUL; otherwise an :class:`InputError` naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what}: expected a non-empty relative path, got {shorten(value)}")
    win = PureWindowsPath(value)
    parts = re.split(r"[/\\]", value)
    if "\0" in value or PurePosixPath(value).is_absolute() or win.drive or win.root or ".." in parts:
        raise InputError(
            f"{what}: {shorten(value)} must be a path relative to {root} that stays inside it (no leading '/', "
            "no drive, no '..')"
        )
    return value


def inside(root: str | Path, *parts: str, what: str = "path") -> Path:
    """``root / parts...`` after checking that the joined relative path (built from data) stays below ``root``
    (:func:`relative_part`); nothing is created or read."""
    for part in parts:
        relative_part(part, what, str(root))
    return Path(root).joinpath(*parts)


def file_stem(text: str, default: str = "unnamed") -> str:
    """``text`` (a model spec, a label, a split name) as one safe file-name component for a default output name:
    runs of characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``, and those three are dropped
    at both ends, so the result is never ``..`` or a hidden file; ``default`` when nothing is left."""
    stem = _UNSAFE_NAME.sub("_", str(text)).strip("._-")
    return stem or default


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths ``a`` and ``b`` name the same file however spelled (``./``, relative vs absolute, symbolic
    or hard links); a path that does not exist is the same as ``a`` only when both resolve alike."""
    a, b = user_path(a), user_path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


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
    readers see the old or the new file, never a partial one, even after a power loss. Any exception
    (``KeyboardInterrupt`` included, and SIGTERM under the CLI, which turns it into one) removes the
    temporary file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f"cannot write {path}: {e.strerror or e} (check the folder exists, is writable and the disk has space)"
        ) from None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        # mkstemp creates 0600; give the result the mode a plain open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    except BaseException as e:
        if tmp is not None:
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
    path = user_path(path)
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
    path = user_path(path)
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


FIGURE_DPI = 254  # >= 200 dpi (what journals ask of raster figures); 254 dpi = 100 px/mm, exact in PNG pHYs
VECTOR_COPIES = ("pdf", "svg")  # written beside every PNG figure, for papers and slides
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}  # same figure, same bytes


def atomic_save_figure(fig: Any, path: str | Path, dpi: int = FIGURE_DPI) -> list[Path]:
    """Save a matplotlib figure atomically (tight bounding box) and return the paths written.

    A ``.png`` (or suffix-less) path is written as PNG at ``dpi`` plus PDF and SVG copies with the same stem, so
    every saved figure can go into a paper as it is; any other suffix (``.pdf``, ``.svg``, ``.jpg``) is written
    in that format only.

    Args:
        fig: the matplotlib Figure.
        path: where to write it; the suffix names the format.
        dpi: raster resolution (PNG, and images inside the PDF/SVG).
    """
    import matplotlib  # the figure exists, so matplotlib is installed and imported already

    path = user_path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    paths = [(path, fmt)] + ([(path.with_suffix(f".{v}"), v) for v in VECTOR_COPIES] if fmt == "png" else [])
    # fixed SVG element ids and no dates: the same figure gives the same bytes (diffable, cacheable)
    with matplotlib.rc_context({"svg.hashsalt": "lseg_nb"}):
        for out, kind in paths:
            meta = _NO_DATE.get(kind)
            _atomic(
                out,
                lambda tmp, k=kind, m=meta: fig.savefig(
                    tmp, dpi=dpi, bbox_inches="tight", format=k, metadata=m
                ),
            )
    return [out for out, _ in paths]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see a partial file."""
    _atomic(user_path(path), lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic(user_path(path), lambda tmp: Path(tmp).write_bytes(data))


def atomic_save_png(array: np.ndarray, path: str | Path, palette: np.ndarray | None = None) -> None:
    """Save an image array as a PNG atomically: ``(H, W, 3)`` uint8 RGB, or an ``(H, W)`` index map -- uint8
    (with ``palette``, ``(K, 3)`` uint8 colours for K <= 256, a palette PNG) or uint16 (16-bit greyscale)."""
    import numpy as np
    from PIL import Image

    im = Image.fromarray(np.asarray(array))
    if palette is not None:
        if len(palette) > 256 or im.mode != "L":
            raise ValueError(
                f"a palette PNG needs a uint8 index map and <= 256 colours, got {im.mode}, {len(palette)}"
            )
        table = np.zeros((256, 3), np.uint8)
        table[: len(palette)] = palette
        im = im.convert("P")
        im.putpalette(table.ravel().tolist())
    _atomic(user_path(path), lambda tmp: im.save(tmp, format="PNG"))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (the previous file survives a crash mid-write)."""
    import torch

    _atomic(user_path(path), lambda tmp: torch.save(obj, tmp))


def atomic_save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Save a flat tensor dict as safetensors atomically (tensors made contiguous, shared storage split)."""
    from safetensors.torch import save, save_file

    flat = {k: v.detach().contiguous().clone() for k, v in tensors.items()}

    def write(tmp: str) -> None:
        if _utf8(tmp):
            save_file(flat, tmp, metadata=metadata)
        else:  # safetensors opens only UTF-8 paths
            Path(tmp).write_bytes(save(flat, metadata=metadata))
        _canonical_safetensors_header(tmp)

    _atomic(user_path(path), write)


def _utf8(path: str | Path) -> bool:
    """Whether ``path`` is valid UTF-8 (file names that are not arrive as surrogate escapes)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its header without loading any tensor (any path,
    also one that is not UTF-8)."""
    path = user_path(path)
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                raise ValueError(f"a header of {n} bytes")
            header = json.loads(f.read(n))
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict):
            raise ValueError("__metadata__ is not a mapping")
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, struct.error, AttributeError) as e:
        raise InputError(f"{path} is not a readable safetensors file ({type(e).__name__}: {e})") from None
    return meta


def _canonical_safetensors_header(path: str | Path) -> None:
    """Rewrite a safetensors header with its metadata keys sorted, in place.

    safetensors keeps the metadata in a Rust ``HashMap`` whose order changes from process to process, so two
    identical runs would write different bytes and checksums could not compare them. Only key order changes, so
    the compact JSON keeps its length and the tensor data (and the offsets into it) stay where they are.
    """
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        meta = header.pop("__metadata__", None)
        ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta is not None else {}) | header
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:  # cannot happen for a reordering; never corrupt the file if it does
            raise RuntimeError(f"{path}: canonical safetensors header is longer than the original")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``; a file that needs arbitrary pickled objects gets a clear error."""
    import torch

    path = user_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign/corrupt files
        raise InputError(
            f"{path} could not be loaded safely with torch.load(weights_only=True): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. If the file is a trusted checkpoint that stores "
            "Python objects besides tensors, re-save only its tensors (state_dict) in a trusted environment, "
            "or convert it with `lseg-nb convert`."
        ) from None


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a flat tensor dict from ``.safetensors`` or a ``weights_only`` torch file."""
    path = user_path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load, load_file

        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            if _utf8(path):
                return load_file(str(path))
            return load(path.read_bytes())  # safetensors opens only UTF-8 paths
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path} is not a readable safetensors file: {e}") from None
    import torch

    obj = safe_torch_load(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} does not hold a flat dict of tensors (a state_dict)")
    return obj


def atomic_save_npy(array: Any, path: str | Path) -> None:
    """``numpy.save`` an array to ``path`` atomically (no pickled objects: ``allow_pickle=False``)."""

    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the temporary name
            np.save(f, np.asarray(array), allow_pickle=False)

    _atomic(Path(path), write)


def check_finite(tensors: dict[str, torch.Tensor], source: str | Path, named: Any = str) -> None:
    """Refuse weights holding NaN or infinite values (a model that predicts one class everywhere), naming the
    first such tensor (as ``named(key)`` spells it) and how many of its values are bad."""
    import torch

    for key, t in tensors.items():
        if t.is_floating_point() or t.is_complex():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise InputError(
                    f"{source}: tensor {named(key)} holds {bad} non-finite value(s) (NaN/inf) of {t.numel()}: the weights "
                    "are damaged (a diverged run or a broken file); use an earlier checkpoint or train again"
                )
