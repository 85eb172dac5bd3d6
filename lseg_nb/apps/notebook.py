"""Small helpers that keep the notebooks short: make sure a run exists, open it, list it, tabulate, show figures.

Notebooks pass artifacts through run folders (never kernel state), so every notebook starts with
``load_run(ensure_run(run_dir))``: the run is trained with the small default config only when the folder holds
no finished model yet. Figures shown with ``show(fig, save=figure_dir(run, NOTEBOOK) / NAME)`` are also written
into the run folder (PNG at 254 dpi plus PDF and SVG), so results can be used without opening the notebook.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lseg_nb.apps.pipeline import demo_config, train_run
from lseg_nb.apps.tables import (  # noqa: F401 - notebook API
    ablation_table,
    calibration_table,
    metrics_table,
    neighbour_table,
    notebook_table,
)
from lseg_nb.config import ConfigError, TrainConfig, load_config
from lseg_nb.data.experiment import Experiment, make_experiment
from lseg_nb.engine.runs import config_differences, load_model
from lseg_nb.models.lseg import LSeg
from lseg_nb.utils.device import resolve_device
from lseg_nb.utils.io import atomic_save_figure, file_stem, inside, user_path
from lseg_nb.utils.labels import LabelSplit
from lseg_nb.utils.labels import clean_labels as parse_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch.utils.data import Dataset

RUN_FILES = {
    "config.json": "the full TrainConfig (round-trips into the dataclass)",
    "environment.json": "git SHA, package versions, device, manifest sha256",
    "metrics.jsonl": "one JSON record per logged step / evaluation",
    "checkpoints/last.pt": "latest training state for exact resume (weights_only-loadable)",
    "model.safetensors": "final weights + model config in the metadata (load_model / load_run)",
    "loss_curve.png": "training loss and learning rate against the step",
    "figures": "notebook figures (figures/<notebook>/<name>.png, 254 dpi, with .pdf and .svg copies)",
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
    """The demo's small training config (:func:`~lseg_nb.apps.pipeline.demo_config`) with notebook knobs.

    ``overrides`` are further :class:`~lseg_nb.config.TrainConfig` fields (e.g. ``amp="bf16"``). Short runs
    (``steps < 100``) log every step so that the loss curve has points; logging and progress fields take no part
    in the resume check, so with the defaults this is the same run as ``lseg-nb demo``.
    """
    cfg = demo_config(dataset, str(run_dir), steps, data_root, fold, max_images)
    log_every = 1 if cfg.steps < 100 else cfg.log_every
    try:
        return dataclasses.replace(
            cfg, batch_size=batch_size, progress=progress, log_every=log_every, **overrides
        )
    except TypeError as e:
        raise ConfigError(f"notebook_config: {e}; valid fields are those of TrainConfig") from None


# notebook_config keywords used only if the run has to be trained: a finished run is returned whatever they say
TRAIN_ONLY = ("steps", "max_images", "batch_size", "progress", "data_root")


def ensure_run(
    run_dir: str | Path, cfg: TrainConfig | None = None, verbose: bool = True, **kwargs: Any
) -> Path:
    """Return ``run_dir`` when it holds a finished model (``model.safetensors``); otherwise train it first.

    Training uses ``cfg`` (its ``run_dir`` is replaced by ``run_dir``) or ``notebook_config(run_dir, **kwargs)``
    (e.g. ``steps=``, ``max_images=``); an interrupted run in the folder is resumed. A finished run must be the
    run asked for: with ``cfg``, every field that changes the numbers (:func:`~lseg_nb.engine.runs.
    config_differences`); with keywords, each one given other than :data:`TRAIN_ONLY` (``dataset=``, ``fold=``,
    config overrides). A finished run of another dataset or fold is refused, never returned.
    """
    run_dir = user_path(run_dir)
    if cfg is not None and kwargs:
        raise TypeError(f"give either cfg or notebook_config keywords, not both (got {sorted(kwargs)})")
    asked = {k: v for k, v in kwargs.items() if k not in TRAIN_ONLY and v is not None}
    if (run_dir / "model.safetensors").is_file():
        if cfg is not None or asked:  # nothing asked: any finished run
            want = notebook_config(run_dir, **kwargs) if cfg is None else cfg
            _check_finished(run_dir, want, None if cfg is not None else asked)
        if verbose:
            print(f"using the finished run in {run_dir}")
        return run_dir
    cfg = (
        notebook_config(run_dir, **kwargs) if cfg is None else dataclasses.replace(cfg, run_dir=str(run_dir))
    )
    if verbose:
        print(
            f"no finished model in {run_dir}: training {cfg.steps} steps on {cfg.data.dataset} (fold {cfg.data.fold})"
        )
    summary = train_run(cfg)
    if verbose:
        print(summary.text())
    return summary.run_dir


def _check_finished(run_dir: Path, want: TrainConfig, asked: dict[str, Any] | None) -> None:
    """Refuse a finished run that is not the one asked for (``asked``: the keywords to check; ``None``: all)."""
    saved = load_config(TrainConfig, run_dir / "config.json")
    diff = config_differences(saved, want)
    if asked is not None:
        names = {"dataset": "data.dataset", "fold": "data.fold"}
        keys = {names.get(k, k) for k in asked}
        diff = [d for d in diff if d in keys or d.split(".")[0] in keys]
    if diff:
        have = ", ".join(f"{d}={_field(saved, d)!r}" for d in diff)
        raise ConfigError(
            f"{run_dir} holds a finished run with {have}, not the run asked for "
            f"({', '.join(f'{d}={_field(want, d)!r}' for d in diff)}): pass another run_dir, or ask for that run"
        )


def _field(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


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

    @property
    def distractors(self) -> list[str]:
        """The dataset's distractor words (its manifest's ``distractors``; empty when it lists none)."""
        return list(self.experiment.manifest.distractors)

    def dataset(self, split: str = "test", max_images: int | None = None) -> Dataset:
        """Split ``split`` with eval transforms: items ``(normalised image (3, H, W), label (H, W))``."""
        data = dataclasses.replace(self.config.data, max_images=max_images)
        return self.experiment.dataset(split, self.config.model, data)


def load_run(
    run_dir: str | Path,
    device: str = "auto",
    dataset: str | None = None,
    fold: int | None | Literal["any"] = "any",
) -> LoadedRun:
    """Open a finished run folder: model on ``device`` (``auto``: CUDA when available) plus its data and fold.

    Args:
        run_dir: the run folder (``config.json`` + ``model.safetensors``).
        device: where the model goes (``auto``: CUDA when available).
        dataset: when given, the run must be of this dataset (else a ``ConfigError`` naming both).
        fold: when given (an index or ``None`` for no fold), the run must be of this zero-shot fold.
    """
    run_dir = user_path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no config.json): train it first, e.g. ensure_run()"
        )
    cfg = load_config(TrainConfig, run_dir / "config.json")
    data = {"dataset": dataset} if dataset is not None else {}
    if fold != "any":
        data["fold"] = fold
    if data:  # the run asked for: this dataset / fold, nothing else changed
        _check_finished(run_dir, dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data)), data)
    model = load_model(run_dir, map_location=str(resolve_device(device)))
    return LoadedRun(run_dir, cfg, model, make_experiment(cfg.data))


def distractor_words(run: LoadedRun, distractors: str | list[str] | None = None) -> list[str]:
    """Extra texts that compete with the class names: ``distractors`` (comma-separated or a list; ``""`` for
    none) or, when ``None``, the run's dataset's own list (manifest field ``distractors``); class names are
    dropped, since they already compete."""
    if distractors is None:
        words = run.distractors
    elif isinstance(distractors, str) and not distractors.strip():
        words = []
    else:
        words = parse_labels(distractors, "distractors")
    return [w for w in words if w not in run.class_names]


def run_labels(run_dir: str | Path) -> LabelSplit:
    """Class names and seen/unseen split of a run folder's dataset and fold (no model is loaded)."""
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


def figure_dir(run_dir: str | Path | LoadedRun, notebook: str) -> Path:
    """``run_dir/figures/<notebook>``: where a notebook saves its figures (see :func:`show`)."""
    base = run_dir.run_dir if isinstance(run_dir, LoadedRun) else user_path(run_dir)
    return inside(base, "figures", notebook, what="figure_dir notebook name")


def _png_paths(save: str | Path, n: int) -> list[Path]:
    path = user_path(save)
    stem = file_stem(path.name.removesuffix(".png"), "figure")
    if n == 1:
        return [path.with_name(f"{stem}.png")]
    return [path.with_name(f"{stem}_{i}.png") for i in range(1, n + 1)]


def show(*figures: Figure, save: str | Path | None = None) -> None:
    """Display figures once in Jupyter (PNG, whatever the matplotlib backend); and with ``save`` (a path such as
    ``figure_dir(run, "02_zero_shot_evaluation") / "examples"``) also write them, atomically and also outside
    IPython: ``NAME.png`` for one figure, ``NAME_1.png``, ``NAME_2.png``, ... for several, each at 254 dpi with a
    PDF and an SVG copy of the same name (:func:`~lseg_nb.utils.io.atomic_save_figure`).

    Registers a PNG formatter for figures when none is active (e.g. under ``MPLBACKEND=Agg``) and closes
    pyplot-managed figures after displaying them, so the inline backend does not show them a second time.
    """
    if save is not None:
        for fig, path in zip(figures, _png_paths(save, len(figures))):
            atomic_save_figure(fig, path)
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
