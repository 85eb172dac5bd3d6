"""Small helpers that keep the notebooks short: make sure a run exists, open it, list it, tabulate, show figures.

Notebooks pass artifacts through run folders (never kernel state), so every notebook starts with
``load_run(ensure_run(run_dir))``: the run is trained with the small default config only when the folder holds
no finished model yet.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lseg_nb.config import ConfigError, TrainConfig, load_config

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch.utils.data import Dataset

    from lseg_nb.evaluate import EvalResult
    from lseg_nb.experiment import Experiment, LabelSplit
    from lseg_nb.models.lseg import LSeg

RUN_FILES = {
    "config.json": "the full TrainConfig (round-trips into the dataclass)",
    "environment.json": "git SHA, package versions, device, manifest sha256",
    "metrics.jsonl": "one JSON record per logged step / evaluation",
    "checkpoints/last.pt": "latest training state for exact resume (weights_only-loadable)",
    "model.safetensors": "final weights + model config in the metadata (load_model / load_run)",
    "report": "demo report folder (metrics.json, report.md, figures)",
    "ablation": "text-encoder ablation reports and runs (notebook 08)",
}


def notebook_config(
    run_dir: str | Path,
    steps: int | None = None,
    max_images: int | None = None,
    batch_size: int = 8,
    dataset: str = "synthetic_textures",
    fold: int | None = 0,
    data_root: str | None = None,
    progress: bool = True,
    **overrides: Any,
) -> TrainConfig:
    """The demo's small training config (:func:`~lseg_nb.pipeline.demo_config`) with notebook knobs.

    ``overrides`` are further :class:`~lseg_nb.config.TrainConfig` fields (e.g. ``amp="bf16"``). Short runs
    (``steps < 100``) log every step so that the loss curve has points; logging and progress fields take no part
    in the resume check, so with the defaults this is the same run as ``lseg-nb demo``.
    """
    from lseg_nb.pipeline import demo_config

    cfg = demo_config(dataset, str(run_dir), steps, data_root, fold, max_images)
    log_every = 1 if cfg.steps < 100 else cfg.log_every
    try:
        return dataclasses.replace(
            cfg, batch_size=batch_size, progress=progress, log_every=log_every, **overrides
        )
    except TypeError as e:
        raise ConfigError(f"notebook_config: {e}; valid fields are those of TrainConfig") from None


def ensure_run(
    run_dir: str | Path, cfg: TrainConfig | None = None, verbose: bool = True, **kwargs: Any
) -> Path:
    """Return ``run_dir`` when it holds a finished model (``model.safetensors``); otherwise train it first.

    Training uses ``cfg`` (its ``run_dir`` is replaced by ``run_dir``) or ``notebook_config(run_dir, **kwargs)``
    (e.g. ``steps=``, ``max_images=``); an interrupted run in the folder is resumed.
    """
    run_dir = Path(run_dir)
    if (run_dir / "model.safetensors").is_file():
        if verbose:
            print(f"using the finished run in {run_dir}")
        return run_dir
    if cfg is not None and kwargs:
        raise TypeError(f"give either cfg or notebook_config keywords, not both (got {sorted(kwargs)})")
    cfg = (
        notebook_config(run_dir, **kwargs) if cfg is None else dataclasses.replace(cfg, run_dir=str(run_dir))
    )
    if verbose:
        print(
            f"no finished model in {run_dir}: training {cfg.steps} steps on {cfg.data.dataset} (fold {cfg.data.fold})"
        )
    from lseg_nb.train import train

    return Path(train(cfg))


@dataclass
class LoadedRun:
    """A finished run opened for analysis: its config, model (eval mode) and resolved experiment."""

    run_dir: Path
    config: TrainConfig
    model: LSeg
    experiment: Experiment

    @property
    def labels(self) -> LabelSplit:
        """Class names and the fold's seen/unseen indices."""
        return self.experiment.labels

    @property
    def class_names(self) -> list[str]:
        return list(self.labels.class_names)

    @property
    def seen(self) -> list[int]:
        return list(self.labels.seen)

    @property
    def unseen(self) -> list[int]:
        return list(self.labels.unseen)

    def dataset(self, split: str = "test", max_images: int | None = None) -> Dataset:
        """Split ``split`` with eval transforms: items ``(normalised image (3, H, W), label (H, W))``."""
        data = dataclasses.replace(self.config.data, max_images=max_images)
        return self.experiment.dataset(split, self.config.model, data)


def load_run(run_dir: str | Path, device: str = "auto") -> LoadedRun:
    """Open a finished run folder: model on ``device`` (``auto``: CUDA when available) plus its data and fold."""
    from lseg_nb.experiment import make_experiment
    from lseg_nb.runs import load_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no config.json): train it first, e.g. ensure_run()"
        )
    cfg = load_config(TrainConfig, run_dir / "config.json")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(run_dir, map_location=device)
    return LoadedRun(run_dir, cfg, model, make_experiment(cfg.data))


def run_labels(run_dir: str | Path) -> LabelSplit:
    """Class names and seen/unseen split of a run folder's dataset and fold (no model is loaded)."""
    from lseg_nb.experiment import make_experiment

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no config.json): train it first, e.g. ensure_run()"
        )
    return make_experiment(load_config(TrainConfig, run_dir / "config.json").data).labels


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024**exp:.1f} {'KMG'[exp - 1]}iB"


def run_files(run_dir: str | Path) -> list[dict[str, str]]:
    """One row per file of a run folder (sorted path, human size, what it is), for a table."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    rows = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir).as_posix()
        what = RUN_FILES.get(rel) or RUN_FILES.get(rel.split("/", 1)[0], "")
        rows.append({"file": rel, "size": _human(path.stat().st_size), "contents": what})
    return rows


def _pct(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100 * v, 1)


def metrics_table(result: EvalResult) -> list[dict[str, Any]]:
    """Rows (in %) of the generalised all-labels setting and, with unseen classes, the paper's unseen-only one."""
    a = result.all_labels
    rows = [
        {
            "setting": "all labels (generalised)",
            "mIoU": _pct(a.miou),
            "pixel acc": _pct(a.pixel_acc),
            "seen mIoU": _pct(a.seen_miou),
            "unseen mIoU": _pct(a.unseen_miou),
            "harmonic": _pct(a.harmonic_iou),
        },
    ]
    if result.unseen_only is not None:
        u = result.unseen_only
        rows.insert(
            0,
            {
                "setting": "unseen labels only (paper)",
                "mIoU": _pct(u.miou),
                "pixel acc": _pct(u.pixel_acc),
                "seen mIoU": None,
                "unseen mIoU": _pct(u.miou),
                "harmonic": None,
            },
        )
    return rows


def parse_labels(text: str | Sequence[str], strict: bool = False) -> list[str]:
    """Comma-separated label text (or a list) -> stripped, non-empty, de-duplicated labels in order.

    ``strict`` (interactive tools): an empty entry or a repeated label is an error naming it, instead of being
    dropped silently. No label at all is always an error.

    >>> parse_labels(" red, stripes,, red ,grass")
    ['red', 'stripes', 'grass']
    """
    parts = [
        p.strip() if isinstance(p, str) else "" for p in (text.split(",") if isinstance(text, str) else text)
    ]
    labels = list(dict.fromkeys(p for p in parts if p))
    if not labels:
        raise ValueError(f"no labels in {text!r}: type comma-separated words, e.g. 'red, stripes, grass'")
    if strict and "" in parts:
        raise ValueError(
            f"entry {parts.index('') + 1} of {text!r} is empty: remove the extra comma (labels are comma-separated)"
        )
    if strict and len(labels) < len(parts):
        twice = next(lab for lab in labels if parts.count(lab) > 1)
        raise ValueError(
            f"label {twice!r} is given {parts.count(twice)} times in {text!r}: give each label once"
        )
    return labels


def show(*figures: Figure) -> None:
    """Display figures once in Jupyter (PNG, whatever the matplotlib backend); no-op outside IPython.

    Registers a PNG formatter for figures when none is active (e.g. under ``MPLBACKEND=Agg``) and closes
    pyplot-managed figures after displaying them, so the inline backend does not show them a second time.
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import select_figure_formats
    from matplotlib.figure import Figure as MplFigure

    png = shell.display_formatter.formatters["image/png"]
    if MplFigure not in png.type_printers:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")
    for fig in figures:
        display(fig)
        plt.close(fig)
