"""End-to-end jobs shared by the CLI and the notebooks: train a run with a summary, and the offline demo
(evaluation itself is :func:`lseg_nb.evaluate` / :func:`lseg_nb.evaluate_run`).

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lseg_nb.apps.reports import data_line, markdown_table, metrics_rows
from lseg_nb.config import TrainConfig, get_recipe
from lseg_nb.data.experiment import Experiment
from lseg_nb.engine.evaluate import evaluate
from lseg_nb.engine.results import EvalResult
from lseg_nb.engine.runs import MetricsLog
from lseg_nb.engine.train import Trainer, quiet_known_warnings
from lseg_nb.models.text_encoder import TextEncoder
from lseg_nb.utils.errors import printable
from lseg_nb.utils.io import atomic_save_figure, atomic_write_text
from lseg_nb.utils.optional import MissingDependencyError
from lseg_nb.viz.segmentation import plot_examples, plot_loss_curve, plot_per_class_iou


def save_loss_curve(run_dir: str | Path) -> Path | None:
    """Draw the run's ``metrics.jsonl`` (loss and learning rate, labelled) into ``run_dir/loss_curve.png``.

    Without matplotlib (the ``notebooks`` extra) the run is complete all the same: a warning names the extra and
    ``None`` is returned, so a core-only install trains to the end.
    """
    run_dir = Path(run_dir)
    try:
        fig = plot_loss_curve(MetricsLog(run_dir / "metrics.jsonl").read(), printable(run_dir.name))
    except MissingDependencyError as e:
        warnings.warn(f"loss_curve.png not drawn: {e}", stacklevel=2)
        return None
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
        f"Scored: {data_line(result)}.",
        f"Protocol: {result.protocol_name}. Values in %.",
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
    protocol = dataclasses.replace(cfg.eval, calibrate_seen=trainer.exp.labels.is_zero_shot)
    result = evaluate(trainer.model, cfg.data, protocol, cfg.data.test_split, examples, cfg.progress)
    return write_report(trainer.run_dir, result, trainer.exp, cfg, summary.seconds)
