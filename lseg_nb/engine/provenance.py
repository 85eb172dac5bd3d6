"""What produced an output file: the model's family, name and config hash, and the lseg_nb version.

Written into feature manifests (:mod:`lseg_nb.engine.features`) and ONNX metadata (:mod:`lseg_nb.apps.export`), so
that every stored array or exported graph names the exact model configuration it came from. The config hash is the
sha256 of the config's canonical JSON (sorted keys, no whitespace): two files with the same hash came from the same
architecture, text encoder and normalisation. It does not identify the weights; :func:`file_sha256` does that for
a weights file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

import lseg_nb
from lseg_nb.config import to_dict
from lseg_nb.models.dense_clip import DenseCLIP
from lseg_nb.models.image_encoder import ViTEncoder
from lseg_nb.models.lseg import LSeg


def config_sha256(config: Any) -> str:
    """Hex sha256 of a config dataclass's canonical JSON (``to_dict``, sorted keys, compact separators)."""
    text = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_family(model: nn.Module) -> str:
    """``"lseg-cnn"``, ``"lseg-vit"`` or ``"dense-clip"`` (a ``ValueError`` names anything else)."""
    if isinstance(model, DenseCLIP):
        return "dense-clip"
    if isinstance(model, LSeg):
        return "lseg-vit" if isinstance(model.image_encoder, ViTEncoder) else "lseg-cnn"
    raise ValueError(
        f"{type(model).__name__} is not an lseg_nb model (LSeg or DenseCLIP): load weights with "
        "lseg_nb.engine.runs.load_model"
    )


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """JSON-safe identity of a model: family, name (backbone or dense-CLIP spec), config, its hash, lseg_nb
    version, embedding dimension, normalisation and size multiple."""
    family = model_family(model)
    cfg = model.config
    return {
        "family": family,
        "name": cfg.spec if family == "dense-clip" else cfg.backbone,
        "config": to_dict(cfg),
        "config_sha256": config_sha256(cfg),
        "lseg_nb_version": lseg_nb.__version__,
        "text_dim": int(model.text_dim),
        "mean": [float(m) for m in cfg.mean],
        "std": [float(s) for s in cfg.std],
        "size_multiple": int(model.size_multiple),
    }
