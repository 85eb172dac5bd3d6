"""Run folders: provenance (config, git SHA, package versions, manifest hashes), metrics log, checkpoints.

Layout of a run folder::

    config.json         the full TrainConfig (JSON round-trips into the dataclass)
    environment.json    git SHA, package versions, device, manifest sha256
    metrics.jsonl       one JSON object per logged step / evaluation
    checkpoints/last.pt latest training state (weights_only-loadable), written atomically
    model.safetensors   final weights + model config (and the step) in the metadata
    .lock               held (flock) by the process training in the folder; names its pid and host

Where a run lives (:func:`load_run_config`): a run's own ``config.json`` trains in the folder that holds it, so a
copied run folder trains in the copy whatever ``run_dir`` the copied file still names; ``--run-dir`` (or
``run_dir=``) overrides that, and any other config file (a recipe, ``exp.yaml``) trains in its ``run_dir``.

Resuming (:func:`check_resume`): a folder's checkpoint records the config it was trained with; a resume may change
only bookkeeping (how often it logs, saves, evaluates; progress bars) and ``steps`` - and ``steps`` only while
the learning-rate schedule stays the same, i.e. its horizon ``schedule_steps or steps`` does not move and the new
``steps`` is not behind the checkpoint. Then the run continues on the very schedule it had, and ``config.json``
is rewritten with the new ``steps``. Anything else is refused with the fix: a finished run with
``schedule_steps=None`` has decayed its learning rate to its end, and "training longer" means a new run folder
(or, planned ahead, a ``schedule_steps`` beyond ``steps``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import platform
import socket
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from lseg_nb.checkpoints.weights import load_lseg_nb, save_lseg_nb
from lseg_nb.config import ConfigError, TrainConfig, from_dict, load_config, to_dict
from lseg_nb.models.dense_clip import create_dense_clip, parse_model_spec
from lseg_nb.utils.errors import InputError, SetupError
from lseg_nb.utils.io import atomic_torch_save, atomic_write_text, safe_torch_load, user_path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

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
        """All records. A torn last line (a crash mid-write) is skipped with a warning; a bad line elsewhere is a
        ``ValueError`` naming the file and line."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(errors="replace").splitlines()
        records = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif n == len(lines):
                warnings.warn(
                    f"{self.path}:{n}: skipping a torn last line (a run stopped mid-write): {line[:60]!r}",
                    stacklevel=2,
                )
            else:
                raise InputError(
                    f"{self.path}:{n}: not a JSON record ({line[:60]!r}); fix or delete that line, or train "
                    "with --no-resume to start the run over"
                )
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (after resuming from an older checkpoint)."""
        keep = [r for r in self.read() if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))


class RunFolderBusy(SetupError):
    """Another process holds the run folder's lock."""


class RunLock:
    """Exclusive lock on a run folder for the duration of a run: ``fcntl.flock`` on ``<run_dir>/.lock``.

    The lock holder's pid and host are written into the file, so a second run in the same folder fails at once
    naming them instead of interleaving its records into ``metrics.jsonl``. The kernel drops the lock when the
    process ends, however it ends (a SIGKILL leaves no stale lock), so the file may stay behind. Without
    ``fcntl`` (Windows) or on a filesystem refusing locks the run proceeds unlocked, with a warning.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            warnings.warn(f"no file locking on this platform: {self.path.parent} is not locked", stacklevel=2)
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OSError(f"cannot create the lock file {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunFolderBusy(
                    f"run folder {self.path.parent} is in use by {holder} (lock {self.path}): wait for that run "
                    "to finish or stop it, or choose another run_dir"
                ) from None
            warnings.warn(f"cannot lock {self.path} ({e.strerror or e}); running unlocked", stacklevel=2)
            return self
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on host {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


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


def load_model(weights: str | Path, map_location: str = "cpu", text_encoder: Any = None) -> torch.nn.Module:
    """The one model loader: a run folder (its ``model.safetensors``), any lseg_nb ``.safetensors`` file (trained
    here or converted from an official checkpoint), or a training-free dense-CLIP spec such as
    ``naclip:ViT-B-16/openai`` (:func:`~lseg_nb.models.dense_clip.create_dense_clip`); an existing path wins.

    Args:
        weights: run folder, ``.safetensors`` file or ``METHOD:MODEL/PRETRAINED`` spec.
        map_location: device to load onto (``"cpu"``, ``"cuda"``).
        text_encoder: a text encoder to use instead of the one in the config (LSeg only).
    """
    text = str(weights)
    path = user_path(text)
    if not path.exists() and ":" in text:
        if text_encoder is not None:
            raise InputError(f"{text!r}: dense-CLIP models always use their own CLIP text tower")
        return create_dense_clip(parse_model_spec(text), device=map_location)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"no model weights at {path}: train first, or pass a .safetensors file or a training-free spec such "
            "as naclip:ViT-B-16/openai"
        )
    return load_lseg_nb(path, map_location, text_encoder)


RUN_CONFIG = "config.json"


def load_run_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` in file ``path``; when it is a run's own ``config.json`` its ``run_dir`` is the
    folder holding the file (never a stale ``run_dir`` written inside a copied file)."""
    path = user_path(path)
    cfg = load_config(TrainConfig, path)
    if path.name == RUN_CONFIG:
        cfg = dataclasses.replace(cfg, run_dir=str(path.parent))
    return cfg


# fields that change when and how a run reports, never what it computes
BOOKKEEPING = (
    "run_dir",
    "checkpoint_every",
    "log_every",
    "eval_every",
    "eval_max_images",
    "progress",
    "resume",
)


def config_differences(
    saved: TrainConfig, cfg: TrainConfig, ignore: tuple[str, ...] = BOOKKEEPING
) -> list[str]:
    """Dotted names of the fields in which ``cfg`` differs from ``saved`` (``data.fold``, ``lr``), ``ignore``
    (top-level names) left out."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(to_dict(saved)), flat(to_dict(cfg))
    return [k for k in b if k.split(".")[0] not in ignore and a.get(k) != b[k]]


def checkpoint_config(state: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The config a training state was trained with (recorded in it), else the folder's ``config.json`` (older
    checkpoints)."""
    recorded = state.get("config")
    if isinstance(recorded, str):
        try:
            return from_dict(TrainConfig, json.loads(recorded))
        except (ConfigError, json.JSONDecodeError) as e:
            raise InputError(f"{run_dir}: the checkpoint's recorded config is unreadable ({e})") from None
    return load_config(TrainConfig, run_dir / "config.json")


def check_resume(saved: TrainConfig, cfg: TrainConfig, step: int, run_dir: Path) -> None:
    """Refuse resuming a run at ``step`` (trained with ``saved``) with ``cfg``, unless only bookkeeping fields
    or, on the same learning-rate schedule, ``steps`` changed (see the module docstring)."""
    diff = config_differences(saved, cfg, BOOKKEEPING + ("steps", "schedule_steps"))  # horizon: below
    if diff:
        raise ConfigError(
            f"{run_dir} holds a run with a different config (fields {diff}, at step {step}); use a new run_dir, "
            "or resume=False (--no-resume) to start this folder over"
        )
    horizon, new = saved.schedule_steps or saved.steps, cfg.schedule_steps or cfg.steps
    if new != horizon:
        raise ConfigError(
            f"{run_dir} was trained with a {saved.schedule} learning-rate schedule over {horizon} steps and is at "
            f"step {step}; steps={cfg.steps} would move that schedule mid-run (the learning rate would jump). To "
            f"train {cfg.steps} steps, use a new run_dir; to extend a run later, give it schedule_steps (the "
            "decay horizon) beyond steps from the start"
        )
    if cfg.steps < step:
        raise ConfigError(
            f"{run_dir} is already at step {step}, past steps={cfg.steps}: give steps >= {step} (up to "
            f"schedule_steps={horizon}), or a new run_dir"
        )
