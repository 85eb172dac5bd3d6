"""End-to-end jobs shared by the CLI and the notebooks: train a run with a summary, evaluate a trained run (with
its recipe's protocol, dense or the paper's episodic zero-shot one), score any weights on a paper benchmark, and
the offline demo.

Training ends with :class:`TrainSummary` (steps, wall time, final loss, where the run is, the next command) and a
labelled ``loss_curve.png`` in the run folder. The demo trains the small CPU config on a zero-shot fold, evaluates
seen vs unseen classes on the test split and writes a report folder (``metrics.json``, ``report.md`` and PNG
figures).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from lseg_nb.apps.reports import data_line, inference_name, markdown_table, metrics_rows
from lseg_nb.config import ConfigError, DataConfig, EvalConfig, TrainConfig, get_recipe, load_config
from lseg_nb.data.benchmarks.registry import episode_source
from lseg_nb.data.experiment import Experiment, make_experiment
from lseg_nb.engine.evaluate import EvalResult, evaluate_split
from lseg_nb.engine.fewshot import evaluate_ade20k, evaluate_source
from lseg_nb.engine.runs import MetricsLog, load_model, load_model_or_spec
from lseg_nb.engine.seen_bias import fit_split_seen_offset
from lseg_nb.engine.train import Trainer, quiet_known_warnings
from lseg_nb.models.text_encoder import TextEncoder
from lseg_nb.utils.device import resolve_device
from lseg_nb.utils.errors import printable
from lseg_nb.utils.io import atomic_save_figure, atomic_write_text
from lseg_nb.viz.segmentation import plot_examples, plot_loss_curve, plot_per_class_iou


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    data: DataConfig | None = None,
    protocol: EvalConfig | None = None,
    max_images: int | None = None,
    examples: int | Sequence[int] = 0,
    progress: bool = True,
    calibrate_seen: bool = False,
) -> EvalResult:
    """Evaluate the model of a finished run folder on its own dataset/fold (unless ``data`` overrides) with its
    recipe's evaluation protocol (unless ``protocol`` overrides; the window is always ``model.crop_size``).
    ``examples``: how many diverse images (or which indices) to keep with predictions for figures.
    ``calibrate_seen``: also report the generalised setting after seen-bias calibration (see :func:`score_split`)."""
    run_dir = Path(run_dir)
    cfg = load_config(TrainConfig, run_dir / "config.json")
    if data is not None:
        cfg = dataclasses.replace(cfg, data=data)
    model = load_model(run_dir, map_location=str(resolve_device("auto")))
    exp = make_experiment(cfg.data)
    return score_split(
        model, exp, split, cfg.data, protocol or cfg.eval, max_images, examples, progress, calibrate_seen
    )


def score_split(
    model: nn.Module,
    exp: Experiment,
    split: str,
    data: DataConfig,
    protocol: EvalConfig,
    max_images: int | None = None,
    examples: int | Sequence[int] = 0,
    progress: bool = True,
    calibrate_seen: bool = False,
) -> EvalResult:
    """:func:`~lseg_nb.engine.evaluate.evaluate_split`, with ``calibrate_seen`` first fitting the seen-class logit
    offset on the validation split (:func:`~lseg_nb.engine.seen_bias.fit_split_seen_offset`, the whole split) and
    scoring the generalised setting with and without it (``result.calibrated``)."""
    offset = None
    if calibrate_seen:
        if not exp.labels.unseen:
            raise ConfigError(
                "seen-bias calibration needs a zero-shot fold (seen and unseen classes): pass --fold or drop "
                "--calibrate-seen"
            )
        offset = fit_split_seen_offset(model, exp, data, protocol, progress=progress).offset
    return evaluate_split(model, exp, split, data, protocol, max_images, examples, progress, offset)


def evaluate_benchmark_run(
    run_dir: str | Path,
    data: DataConfig | None = None,
    max_episodes: int | None = None,
    generalised: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a run whose recipe uses ``eval.protocol='episodic'`` on its benchmark fold (``data`` overrides
    dataset/root/fold/splits): the paper's episodes at the run's ``crop_size`` (480 for the paper recipes, as the
    official 480x480), see :func:`~lseg_nb.engine.fewshot.evaluate_source`."""
    run_dir = Path(run_dir)
    cfg = load_config(TrainConfig, run_dir / "config.json")
    d = data or cfg.data
    if d.data_root is None:
        raise ConfigError(
            f"{run_dir}: its data.data_root is not set; pass --data-root (the benchmark folder)"
        )
    if d.fold is None:
        raise ConfigError(f"{run_dir}: the episodic protocol scores one fold; pass --fold")
    source = episode_source(d.dataset, d.data_root, d.fold, d.splits)  # data errors before the model loads
    model = load_model(run_dir, map_location=str(resolve_device("auto")))
    result = evaluate_source(model, source, generalised, model.config.crop_size, max_episodes, progress)
    return {"run": str(run_dir), **result}


def benchmark_model(
    name: str,
    weights: str | Path | nn.Module,
    root: str | Path,
    fold: int = 0,
    splits: str | Path | None = None,
    generalised: bool = False,
    image_size: int = 480,
    max_episodes: int | None = None,
    seed: int = 0,
    labels_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any] | EvalResult:
    """Score any weights (run folder, ``.safetensors`` such as a converted official checkpoint, or a dense-CLIP
    spec) on a paper benchmark with its protocol: episodic zero-shot for ``pascal5i``/``coco20i``/``fss1000``
    (a dict, :func:`~lseg_nb.engine.fewshot.evaluate_source`), the official multi-scale protocol for
    ``ade20k150`` (an :class:`EvalResult` on the validation split; ``max_episodes`` caps images)."""
    source = (
        None if name == "ade20k150" else episode_source(name, root, fold, splits, seed, None, labels_file)
    )
    if isinstance(weights, nn.Module):
        model = weights
    else:
        model = load_model_or_spec(weights, str(resolve_device("auto")))
    if source is None:
        return evaluate_ade20k(model, root, max_images=max_episodes, progress=progress)
    return evaluate_source(model, source, generalised, image_size, max_episodes, progress)


def evaluate_model(
    model: str | Path | nn.Module,
    data: DataConfig,
    split: str = "test",
    protocol: EvalConfig | None = None,
    max_images: int | None = None,
    examples: int | Sequence[int] = 0,
    progress: bool = True,
    calibrate_seen: bool = False,
) -> EvalResult:
    """Evaluate any model (or a run folder, ``.safetensors`` file or dense-CLIP spec such as
    ``maskclip:ViT-B-16/openai``) on ``data``'s dataset and fold with ``protocol`` (default: single pass);
    normalisation and window size come from ``model.config``. ``calibrate_seen``: see :func:`score_split`."""
    if not isinstance(model, nn.Module):
        model = load_model_or_spec(model, map_location=str(resolve_device("auto")))
    exp = make_experiment(data)
    return score_split(
        model, exp, split, data, protocol or EvalConfig(), max_images, examples, progress, calibrate_seen
    )


def save_loss_curve(run_dir: str | Path) -> Path:
    """Draw the run's ``metrics.jsonl`` (loss and learning rate, labelled) into ``run_dir/loss_curve.png``."""
    run_dir = Path(run_dir)
    fig = plot_loss_curve(MetricsLog(run_dir / "metrics.jsonl").read(), printable(run_dir.name))
    atomic_save_figure(fig, run_dir / "loss_curve.png")
    return run_dir / "loss_curve.png"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass(frozen=True)
class TrainSummary:
    """What one training call did: ``start_step`` -> ``step`` of ``total_steps`` in ``seconds`` (wall time of
    this call, model building included), the last logged loss (``final_loss_step``: its step) and throughput,
    and where the run and its loss curve are (``None`` on DDP ranks other than 0)."""

    run_dir: Path
    step: int
    total_steps: int
    start_step: int
    seconds: float
    final_loss: float | None
    final_loss_step: int | None
    images_per_s: float | None
    loss_curve: Path | None

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def text(self) -> str:
        """A few lines for people: steps, time, final loss, the run folder and the next command to run."""
        run = shlex.quote(str(self.run_dir))
        done = self.step - self.start_step
        loss = (
            "n/a"
            if self.final_loss is None
            else f"{self.final_loss:.4f} (logged at step {self.final_loss_step})"
        )
        if done == 0:
            progress = f"nothing to train: the run is already at step {self.step} ({_duration(self.seconds)})"
        else:
            resumed = f" (resumed at step {self.start_step})" if self.start_step else ""
            speed = "" if self.images_per_s is None else f", {self.images_per_s:.1f} images/s"
            progress = f"{done} steps{resumed} in {_duration(self.seconds)}{speed}"
        lines = [
            f"training {'finished' if self.finished else 'paused'} at step {self.step} of {self.total_steps}: "
            f"{progress}",
            f"final training loss: {loss}",
            f"run folder: {self.run_dir}"
            + (f" (loss curve: {self.loss_curve.name})" if self.loss_curve is not None else ""),
        ]
        if self.finished:
            lines += [
                "next: evaluate it with",
                f"  lseg-nb evaluate --run {run}",
                f"  or segment an image: lseg-nb predict --weights {run} --image IMAGE --labels LABEL ...",
            ]
        else:
            lines += [
                "next: resume it with",
                f"  lseg-nb train --config {shlex.quote(str(self.run_dir / 'config.json'))}",
            ]
        return "\n".join(lines)


def _fit(
    cfg: TrainConfig, text_encoder: TextEncoder | None = None, stop_at: int | None = None
) -> tuple[Trainer, TrainSummary]:
    t0 = time.perf_counter()
    trainer = Trainer(cfg, text_encoder)
    with quiet_known_warnings():
        trainer.fit(stop_at)
    seconds = time.perf_counter() - t0
    main = trainer.dist.main  # under torchrun only rank 0 logs, so only it draws the curve
    records = [r for r in MetricsLog(trainer.run_dir / "metrics.jsonl").read() if "loss" in r] if main else []
    last = records[-1] if records else {}
    summary = TrainSummary(
        run_dir=trainer.run_dir,
        step=trainer.step,
        total_steps=cfg.steps,
        start_step=trainer.start_step,
        seconds=seconds,
        final_loss=float(last["loss"]) if last and math.isfinite(last["loss"]) else None,
        final_loss_step=int(last["step"]) if last else None,
        images_per_s=last.get("images_per_s"),
        loss_curve=save_loss_curve(trainer.run_dir) if main else None,
    )
    return trainer, summary


def train_run(
    cfg: TrainConfig, text_encoder: TextEncoder | None = None, stop_at: int | None = None
) -> TrainSummary:
    """Train (or resume) ``cfg`` like :func:`~lseg_nb.engine.train.train`, write ``loss_curve.png`` into the run
    folder and return a :class:`TrainSummary` (print its ``text()``)."""
    return _fit(cfg, text_encoder, stop_at)[1]


def demo_config(
    dataset: str = "synthetic_textures",
    run_dir: str = "runs/demo",
    steps: int | None = None,
    data_root: str | None = None,
    fold: int | None | Literal["recipe"] = "recipe",
    max_images: int | None = None,
) -> TrainConfig:
    """The demo's training config: recipe ``demo_synthetic`` or ``demo_msrc_v2`` (any other manifest: the MSRC
    recipe's model and schedule on that dataset), with the given folder, steps, data root, fold (default: the
    recipe's, 0 synthetic / 4 = ``neighbours`` MSRC-v2; another manifest: 0) and image cap."""
    recipe = get_recipe("demo_synthetic" if dataset == "synthetic_textures" else "demo_msrc_v2")
    if fold == "recipe":
        fold = recipe.data.fold if dataset in ("synthetic_textures", "msrc_v2") else 0
    data = dataclasses.replace(
        recipe.data, dataset=dataset, data_root=data_root, fold=fold, max_images=max_images
    )
    return dataclasses.replace(
        recipe, data=data, run_dir=run_dir, steps=recipe.steps if steps is None else steps
    )


def write_report(
    run_dir: Path, result: EvalResult, exp: Experiment, cfg: TrainConfig, seconds: float
) -> Path:
    """Write ``metrics.json``, figures and a short ``report.md`` into ``run_dir/report``."""
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "dataset": exp.manifest.name,
        "fold": cfg.data.fold,
        "class_names": list(exp.labels.class_names),
        "seen_classes": exp.labels.seen_names,
        "unseen_classes": exp.labels.unseen_names,
        "train_seconds": round(seconds, 1),
        **result.to_dict(),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    names, unseen = list(exp.labels.class_names), list(exp.labels.unseen)
    figures = {
        "examples.png": plot_examples([(e.image, e.pred, e.target) for e in result.examples], names, unseen),
        "per_class_iou.png": plot_per_class_iou(
            result.all_labels.per_class_iou,
            names,
            unseen,
            "per-class IoU (all labels, generalised zero-shot)" if unseen else "per-class IoU (all labels)",
        ),
        "loss_curve.png": plot_loss_curve(
            MetricsLog(run_dir / "metrics.jsonl").read(), printable(run_dir.name)
        ),
    }
    for name, fig in figures.items():
        atomic_save_figure(fig, out / name)
    atomic_write_text(out / "report.md", _report_markdown(metrics, result, list(figures)))
    return out


def _report_markdown(metrics: dict, result: EvalResult, figures: list[str]) -> str:
    lines = [
        f"# lseg_nb demo report ({metrics['dataset']}, fold {metrics['fold']})",
        "",
        f"Unseen classes (never training targets): {', '.join(metrics['unseen_classes']) or 'none'}",
        f"Scored: {data_line(result, metrics['dataset'], 'test', metrics['fold'])}.",
        f"Inference: {inference_name(result)}. Values in %.",
        "",
        markdown_table(metrics_rows(result)),
        "",
        f"Training time: {metrics['train_seconds']} s.",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def run_demo(cfg: TrainConfig | None = None, examples: int = 4) -> Path:
    """Train (or resume) ``cfg`` (default :func:`demo_config`), evaluate seen vs unseen on the test split (with and
    without seen-bias calibration fitted on the validation split) and write the report folder ``<run_dir>/report`` (``examples``: how many diverse test images its example figure shows;
    the run folder also gets ``loss_curve.png``)."""
    cfg = cfg or demo_config()
    trainer, summary = _fit(cfg)
    result = score_split(
        trainer.model,
        trainer.exp,
        cfg.data.test_split,
        cfg.data,
        cfg.eval,
        cfg.data.max_images,
        examples=examples,
        progress=cfg.progress,
        calibrate_seen=bool(trainer.exp.labels.unseen),
    )
    return write_report(trainer.run_dir, result, trainer.exp, cfg, summary.seconds)
