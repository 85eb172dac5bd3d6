"""End-to-end jobs shared by the CLI and the notebooks: evaluate a trained run and the offline demo.

The demo trains the small CPU config on a zero-shot fold, evaluates seen vs unseen classes on the test split and
writes a report folder (``metrics.json``, ``report.md`` and PNG figures).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lseg_nb.config import DataConfig, TrainConfig, load_config
from lseg_nb.evaluate import EvalResult, evaluate
from lseg_nb.experiment import Experiment, make_experiment
from lseg_nb.io import atomic_write_text
from lseg_nb.models.lseg import LSeg, get_config
from lseg_nb.runs import MetricsLog, load_model, load_model_or_spec

InferenceMode = Literal["single", "sliding", "multiscale"]


def evaluate_split(
    model: LSeg,
    exp: Experiment,
    split: str,
    cfg: TrainConfig,
    max_images: int | None = None,
    mode: InferenceMode = "single",
    examples: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``model`` on ``split`` with the experiment's labels and seen/unseen partition."""
    return _evaluate(model, exp, split, cfg.model, cfg.data, max_images, mode, examples, progress)


def _evaluate(
    model: nn.Module,
    exp: Experiment,
    split: str,
    model_cfg: Any,
    data: DataConfig,
    max_images: int | None,
    mode: InferenceMode,
    examples: int,
    progress: bool,
) -> EvalResult:
    """``model_cfg`` gives the normalisation (``mean``/``std``) and the window size (``crop_size``)."""
    dataset = exp.dataset(
        split, model_cfg, dataclasses.replace(data, max_images=max_images or data.max_images)
    )
    labels = exp.labels
    kwargs = {"crop_size": model_cfg.crop_size} if mode != "single" else {}
    return evaluate(
        model,
        dataset,
        list(labels.class_names),
        seen=list(labels.seen) if labels.unseen else None,
        unseen=list(labels.unseen) or None,
        mode=mode,
        max_images=max_images,
        progress=progress,
        examples=examples,
        **kwargs,
    )


def evaluate_model(
    model: str | Path | nn.Module,
    data: DataConfig,
    split: str = "test",
    mode: InferenceMode = "single",
    max_images: int | None = None,
    examples: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Evaluate any model (or a run folder, ``.safetensors`` file or dense-CLIP spec such as
    ``maskclip:ViT-B-16/openai``) on ``data``'s dataset and fold; normalisation and window size come from
    ``model.config``."""
    if not isinstance(model, nn.Module):
        model = load_model_or_spec(model, map_location="cuda" if torch.cuda.is_available() else "cpu")
    exp = make_experiment(data)
    return _evaluate(model, exp, split, model.config, data, max_images, mode, examples, progress)


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    data: DataConfig | None = None,
    mode: InferenceMode = "single",
    max_images: int | None = None,
    examples: int = 0,
) -> EvalResult:
    """Evaluate the model of a finished run folder (its own dataset/fold unless ``data`` overrides)."""
    run_dir = Path(run_dir)
    cfg = load_config(TrainConfig, run_dir / "config.json")
    if data is not None:
        cfg = dataclasses.replace(cfg, data=data)
    model = load_model(run_dir, map_location="cuda" if torch.cuda.is_available() else "cpu")
    return evaluate_split(model, make_experiment(cfg.data), split, cfg, max_images, mode, examples)


def demo_config(
    dataset: str = "synthetic_textures",
    run_dir: str = "runs/demo",
    steps: int | None = None,
    data_root: str | None = None,
    fold: int | None = 0,
    max_images: int | None = None,
) -> TrainConfig:
    """The demo's training config: small CPU model; synthetic data at 96 px, real data (MSRC-v2) at 128 px crops."""
    synthetic = dataset == "synthetic_textures"
    model = get_config("lseg_small_cpu")
    data = DataConfig(
        dataset=dataset,
        data_root=data_root,
        fold=fold,
        crop_size=96 if synthetic else 128,
        max_images=max_images,
        scale_range=(0.75, 1.5) if synthetic else (0.5, 1.5),
    )
    return TrainConfig(
        model=model,
        data=data,
        run_dir=run_dir,
        steps=steps or (250 if synthetic else 400),
        batch_size=8,
        lr=2e-3,
        schedule="cosine",
        warmup_steps=10,
        log_every=5,
        checkpoint_every=50,
    )


def write_report(
    run_dir: Path, result: EvalResult, exp: Experiment, cfg: TrainConfig, seconds: float
) -> Path:
    """Write ``metrics.json``, figures and a short ``report.md`` into ``run_dir/report``."""
    from lseg_nb.viz.segmentation import plot_examples, plot_loss_curve, plot_per_class_iou

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
            "per-class IoU (all labels, generalised zero-shot)",
        ),
        "loss_curve.png": plot_loss_curve(MetricsLog(run_dir / "metrics.jsonl").read()),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
    atomic_write_text(out / "report.md", _report_markdown(metrics, result, list(figures)))
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def _report_markdown(metrics: dict, result: EvalResult, figures: list[str]) -> str:
    a, u = result.all_labels, result.unseen_only
    lines = [
        f"# lseg_nb demo report ({metrics['dataset']}, fold {metrics['fold']})",
        "",
        f"Unseen classes (never training targets): {', '.join(metrics['unseen_classes']) or 'none'}",
        "",
        "| setting | mIoU | pixel acc | seen mIoU | unseen mIoU | harmonic |",
        "|---|---|---|---|---|---|",
        f"| all labels (generalised) | {_fmt(a.miou)} | {_fmt(a.pixel_acc)} | {_fmt(a.seen_miou)} | "
        f"{_fmt(a.unseen_miou)} | {_fmt(a.harmonic_iou)} |",
    ]
    if u is not None:
        lines.append(f"| unseen labels only (paper) | {_fmt(u.miou)} | {_fmt(u.pixel_acc)} | | | |")
    lines += ["", f"Training time: {metrics['train_seconds']} s.", ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def run_demo(cfg: TrainConfig | None = None) -> Path:
    """Train (or resume) ``cfg`` (default :func:`demo_config`), evaluate seen vs unseen on the test split and write
    the report folder ``<run_dir>/report``."""
    from lseg_nb.train import Trainer

    cfg = cfg or demo_config()
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    seconds = time.perf_counter() - t0
    result = evaluate_split(
        trainer.model,
        trainer.exp,
        cfg.data.test_split,
        cfg,
        cfg.data.max_images,
        examples=4,
        progress=cfg.progress,
    )
    return write_report(Path(cfg.run_dir), result, trainer.exp, cfg, seconds)
