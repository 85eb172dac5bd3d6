"""Where datasets live: explicit data roots, ``$LSEG_NB_DATA``, the shared folder and the cache (moved out of
:mod:`lseg_nb.data.manifests`, which re-exports these names)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lseg_nb.utils.io import user_path

# a lseg_nb.data.manifests.DatasetManifest (not imported: manifests imports this module)
DatasetManifest = Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Cache folder for generated data: ``$LSEG_NB_CACHE`` or ``~/.cache/lseg_nb``."""
    env = os.environ.get("LSEG_NB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lseg_nb"


def shared_dir() -> Path:
    """Shared read-only material: ``$LSEG_NB_SHARED`` or ``../shared`` next to the repository."""
    env = os.environ.get("LSEG_NB_SHARED")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared"


def _looks_like(root: Path, manifest: DatasetManifest) -> bool:
    return (root / manifest.layout.images_dir).is_dir() and any(
        (root / s.file).is_file() for s in manifest.splits
    )


def resolve_data_root(data_root: str | Path | None, manifest: DatasetManifest) -> Path:
    """Find a dataset's root folder.

    Order: explicit ``data_root`` > ``$LSEG_NB_DATA`` (a folder holding ``<name>/`` or the dataset itself) >
    the manifest file's own folder (a manifest kept with its data) > ``$LSEG_NB_SHARED/datasets/<name>`` (default ``../shared`` next to the repo) > ``<cache>/<name>``
    (``$LSEG_NB_CACHE``, default ``~/.cache/lseg_nb``; where generated sets such as the synthetic one live).
    """
    if data_root is not None:
        root = user_path(data_root)
        for cand in (root, root / manifest.name):
            if _looks_like(cand, manifest):
                return cand
        raise FileNotFoundError(
            f"data root {root} for dataset {manifest.name!r} does not exist or lacks "
            f"{manifest.layout.images_dir}/ and the split files {[s.file for s in manifest.splits]}"
        )
    tried = []
    env = os.environ.get("LSEG_NB_DATA")
    candidates = [Path(env).expanduser() / manifest.name, Path(env).expanduser()] if env else []
    if manifest.path is not None:  # a manifest written next to its data (docs/custom-data.md)
        candidates.append(manifest.path.parent)
    candidates += [shared_dir() / "datasets" / manifest.name, cache_dir() / manifest.name]
    for cand in candidates:
        if _looks_like(cand, manifest):
            return cand
        tried.append(str(cand))
    raise FileNotFoundError(
        f"dataset {manifest.name!r} not found; tried: {tried}. Pass --data.data-root PATH (lseg-nb "
        f"train/evaluate/compare; --data-root for lseg-nb demo) or data_root=PATH in Python, or set "
        f"LSEG_NB_DATA to a folder holding {manifest.name}/ (or LSEG_NB_SHARED to the shared folder)."
    )
