"""Per-pixel feature files: float16 ``.npy`` arrays, a ``features.json`` manifest, loaders returning tensors.

Layout of a feature folder (written by :func:`save_features` and :func:`write_feature_manifest`, atomically)::

    <name>.npy            one image's features: C-order float16, shape (D, h, w), unit vectors over D
                          (normalised in float32, then rounded: norms within 1e-3 of 1)
    features.json         model (family, name, config, config sha256, lseg_nb version, image mean/std), recipe
                          (:class:`~lseg_nb.engine.features.FeatureRecipe` fields + description), text dimension,
                          resolution rule, dtype, layout, normalisation, each file's shape
    text_embeddings.npy   optional: float32 (K, D) unit text embeddings of the manifest's ``texts``

Load back with :func:`load_features` (float32 tensor) or ``numpy.load`` (the float16 array);
:func:`load_text_embeddings` returns the stored texts and embeddings, so nearest-text maps
(:func:`lseg_nb.diagnostics.nearest_text_map`) need no model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.engine.features import FeatureRecipe, feature_recipe
from lseg_nb.engine.provenance import model_fingerprint
from lseg_nb.utils.io import atomic_save_npy, atomic_write_text

MANIFEST = "features.json"
TEXT_EMBEDDINGS = "text_embeddings.npy"
FORMAT = "lseg_nb.features"


def save_features(path: str | Path, features: Tensor) -> tuple[int, int, int]:
    """Write features ``(D, h, w)`` as a float16 ``.npy`` atomically; returns the shape (for the manifest)."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"feature files are .npy files: {path} should end in .npy")
    if features.ndim != 3:
        raise ValueError(f"features must be (D, h, w), got {tuple(features.shape)}")
    atomic_save_npy(features.detach().to("cpu", torch.float16).numpy(), path)
    return tuple(int(s) for s in features.shape)  # type: ignore[return-value]


def load_features(path: str | Path, device: str | torch.device = "cpu") -> Tensor:
    """A feature file written by :func:`save_features` as a float32 tensor ``(D, h, w)`` on ``device``
    (``numpy.load(path)`` gives the float16 array itself)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path} is not a readable .npy feature file ({e})") from None
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{path} holds {arr.dtype} {arr.shape}, not float features (D, h, w)")
    return torch.from_numpy(arr.astype(np.float32)).to(device)


def _resolution(r: FeatureRecipe, size: tuple[int, int] | None) -> str:
    if size is not None:
        return f"resized to {int(size[0])} x {int(size[1])} (the model's resize rule), re-normalised"
    return {
        "native": "the embedding grid covering the image (LSeg H/2 x W/2, dense-CLIP H/p x W/p)",
        "openscene": "2H/s x 2W/s for embedding stride s: the original image H x W for LSeg",
        "vlmaps": f"the image resized to long side {r.base_size}",
    }[r.name]


def write_feature_manifest(
    folder: str | Path,
    model: nn.Module,
    recipe: str | FeatureRecipe = "native",
    size: tuple[int, int] | None = None,
    files: dict[str, Sequence[int]] | None = None,
    texts: Sequence[str] | None = None,
    text_emb: Tensor | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/features.json`` (and ``text_embeddings.npy`` with ``texts``) atomically; returns its path.

    Args:
        folder: the folder holding the feature files (created when missing).
        model: the model the features came from (family, config, config sha256, lseg_nb version are recorded).
        recipe: the recipe given to :func:`extract_features`.
        size: the ``size`` given to :func:`extract_features` (``None``: the recipe's resolution).
        files: feature file names relative to ``folder`` -> shape ``(D, h, w)`` (what :func:`save_features`
            returned).
        texts: label texts to store with their embeddings, for nearest-text maps without the model.
        text_emb: their embeddings ``(K, D)``; default ``model.encode_text(texts)``.
        extra: further JSON-safe fields (e.g. ``{"weights": "runs/demo"}``).
    """
    r = feature_recipe(recipe)
    folder = Path(folder)
    ident = model_fingerprint(model)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": 1,
        "model": ident,
        "recipe": r.to_dict(),
        "text_dim": ident["text_dim"],
        "resolution": _resolution(r, size),
        "size": None if size is None else [int(size[0]), int(size[1])],
        "dtype": "float16",
        "layout": "one C-order .npy per image, shape (D, h, w): D embedding channels, then rows, columns",
        "normalisation": "unit L2 norm over D, computed in float32 before rounding to float16 (norms 1 +- 1e-3)",
        "image_normalisation": {"mean": ident["mean"], "std": ident["std"], "of": "RGB in [0, 1]"},
        "load": "lseg_nb.engine.features.load_features(path) -> float32 torch tensor (D, h, w); or "
        "numpy.load(path) (float16)",
        "files": {str(k): [int(s) for s in v] for k, v in (files or {}).items()},
    }
    if texts is not None:
        texts = [str(t) for t in texts]
        emb = model.encode_text(texts) if text_emb is None else text_emb
        if tuple(emb.shape) != (len(texts), ident["text_dim"]):
            raise ValueError(
                f"text embeddings {tuple(emb.shape)} do not fit {len(texts)} texts of dimension {ident['text_dim']}"
            )
        atomic_save_npy(F.normalize(emb.detach().float(), dim=-1).cpu().numpy(), folder / TEXT_EMBEDDINGS)
        manifest |= {"texts": texts, "text_embeddings": TEXT_EMBEDDINGS}
    manifest |= extra or {}
    path = folder / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return path


def read_feature_manifest(folder: str | Path) -> dict[str, Any]:
    """``folder/features.json`` as a dict (checked to be an lseg_nb feature manifest)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no feature manifest {path}: write one with write_feature_manifest()")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lseg_nb feature manifest (format {FORMAT!r} expected)")
    return manifest


def load_text_embeddings(folder: str | Path) -> tuple[list[str], Tensor]:
    """The texts stored with a feature folder and their unit embeddings ``(K, D)`` float32."""
    manifest = read_feature_manifest(folder)
    if "texts" not in manifest:
        raise ValueError(
            f"{Path(folder) / MANIFEST} stores no texts: pass texts= to write_feature_manifest()"
        )
    emb = np.load(Path(folder) / manifest["text_embeddings"], allow_pickle=False)
    return list(manifest["texts"]), torch.from_numpy(emb.astype(np.float32))
