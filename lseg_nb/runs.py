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

from lseg_nb.config import ModelConfig, from_dict, to_dict
from lseg_nb.io import atomic_save_safetensors, atomic_torch_save, atomic_write_text, safe_torch_load

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


def save_model(
    model: torch.nn.Module, path: Path, config: ModelConfig, extra: dict[str, str] | None = None
) -> None:
    """Save the trainable weights as safetensors with the model config in the metadata."""
    state = model.trainable_state_dict() if hasattr(model, "trainable_state_dict") else model.state_dict()
    meta = {"lseg_nb_model_config": json.dumps(to_dict(config)), **(extra or {})}
    atomic_save_safetensors(state, path, metadata=meta)


def load_model(path: str | Path, text_encoder: Any = None, map_location: str = "cpu") -> torch.nn.Module:
    """Rebuild an LSeg model saved by :func:`save_model` (or a run folder holding ``model.safetensors``)."""
    from safetensors import safe_open

    from lseg_nb.models.lseg import build_lseg

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}: train first or point at a .safetensors file")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "lseg_nb_model_config" not in meta:
        raise ValueError(f"{path} has no lseg_nb model config in its metadata; was it written by lseg_nb?")
    cfg = from_dict(ModelConfig, json.loads(meta["lseg_nb_model_config"]))
    model = build_lseg(cfg, text_encoder)
    from lseg_nb.io import load_tensors

    state = load_tensors(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("text_encoder.")]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(map_location).eval()
