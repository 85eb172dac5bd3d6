"""Run folders: provenance (config, git SHA, package versions, manifest hashes), metrics log, checkpoints.

Layout of a run folder::

    config.json         the full TrainConfig (JSON round-trips into the dataclass)
    environment.json    git SHA, package versions, device, manifest sha256
    metrics.jsonl       one JSON object per logged step / evaluation
    checkpoints/last.pt latest training state (weights_only-loadable), written atomically
    model.safetensors   final weights + model config in the metadata
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from lseg_nb.checkpoints.weights import load_lseg_nb, save_lseg_nb
from lseg_nb.models.dense_clip import create_dense_clip, parse_model_spec
from lseg_nb.utils.io import atomic_torch_save, atomic_write_text, safe_torch_load

PACKAGES = (
    "lseg_nb",
    "torch",
    "torchvision",
    "timm",
    "open_clip_torch",
    "sentence-transformers",
    "numpy",
    "umap-learn",
)


def git_sha(path: Path | None = None) -> str | None:
    """Commit of the repository holding ``path`` (this package by default), ``+dirty`` when modified."""
    cwd = path or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide numerical results."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_info(
    manifest_hashes: dict[str, str] | None = None, device: str | None = None
) -> dict[str, Any]:
    """Everything needed to say later what produced a run."""
    return {
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "manifests": manifest_hashes or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class MetricsLog:
    """Append-only JSON-lines log (one flushed line per record, so a crash loses at most the current line)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (after resuming from an older checkpoint)."""
        keep = [r for r in self.read() if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically write a training state made only of tensors, numbers, strings and containers."""
    atomic_torch_save(state, path)


def load_training_state(path: Path) -> dict[str, Any]:
    """Load a training state with ``weights_only=True``."""
    return safe_torch_load(path)


def save_model(model: torch.nn.Module, path: Path, extra: dict[str, str] | None = None) -> None:
    """Save weights + model config as safetensors (the one lseg_nb weights format, see
    :func:`lseg_nb.checkpoints.official.save_lseg_nb`)."""
    save_lseg_nb(model, path, extra)


def load_model(path: str | Path, text_encoder: Any = None, map_location: str = "cpu") -> torch.nn.Module:
    """Rebuild an LSeg model from a run folder (its ``model.safetensors``) or any lseg_nb ``.safetensors`` file
    (trained here or converted from an official checkpoint)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}: train first or point at a .safetensors file")
    return load_lseg_nb(path, map_location, text_encoder)


def load_model_or_spec(
    weights: str | Path, map_location: str = "cpu", text_encoder: Any = None
) -> torch.nn.Module:
    """A run folder or lseg_nb ``.safetensors`` file (:func:`load_model`), or a training-free dense-CLIP spec such
    as ``maskclip:ViT-B-16/openai`` (:func:`~lseg_nb.models.dense_clip.create_dense_clip`); an existing path wins.
    """
    text = str(weights)
    if not Path(text).exists() and ":" in text:
        if text_encoder is not None:
            raise ValueError(f"{text!r}: dense-CLIP models always use their own CLIP text tower")
        return create_dense_clip(parse_model_spec(text), device=map_location)
    return load_model(weights, text_encoder, map_location)
