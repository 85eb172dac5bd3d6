"""End-to-end jobs shared by the CLI and the notebooks: evaluate a trained run (with its recipe's protocol, dense
or the paper's episodic zero-shot one), score any weights on a paper benchmark, and the offline demo.

The demo trains the small CPU config on a zero-shot fold, evaluates seen vs unseen classes on the test split and
writes a report folder (``metrics.json``, ``report.md`` and PNG figures).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from torch import nn

from lseg_nb.apps.reports import percent
from lseg_nb.config import DataConfig, EvalConfig, TrainConfig, get_recipe, load_config
from lseg_nb.data.benchmarks.registry import episode_source
from lseg_nb.data.experiment import Experiment, make_experiment
from lseg_nb.engine.evaluate import EvalResult, evaluate_split
from lseg_nb.engine.fewshot import evaluate_ade20k, evaluate_source
from lseg_nb.engine.runs import MetricsLog, load_model, load_model_or_spec
from lseg_nb.engine.train import Trainer
from lseg_nb.utils.device import resolve_device
from lseg_nb.utils.io import atomic_write_text
from lseg_nb.viz.segmentation import plot_examples, plot_loss_curve, plot_per_class_iou


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    data: DataConfig | None = None,
    protocol: EvalConfig | None = None,
    max_images: int | None = None,
    examples: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Evaluate the model of a finished run folder on its own dataset/fold (unless ``data`` overrides) with its
    recipe's evaluation protocol (unless ``protocol`` overrides; the window is always ``model.crop_size``)."""
    run_dir = Path(run_dir)
    cfg = load_config(TrainConfig, run_dir / "config.json")
    if data is not None:
        cfg = dataclasses.replace(cfg, data=data)
    model = load_model(run_dir, map_location=str(resolve_device("auto")))
    exp = make_experiment(cfg.data)
    return evaluate_split(model, exp, split, cfg.data, protocol or cfg.eval, max_images, examples, progress)


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
        raise ValueError(f"{run_dir}: its data.data_root is not set; pass --data-root (the benchmark folder)")
    if d.fold is None:
        raise ValueError(f"{run_dir}: the episodic protocol scores one fold; pass --fold")
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
    examples: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Evaluate any model (or a run folder, ``.safetensors`` file or dense-CLIP spec such as
    ``maskclip:ViT-B-16/openai``) on ``data``'s dataset and fold with ``protocol`` (default: single pass);
    normalisation and window size come from ``model.config``."""
    if not isinstance(model, nn.Module):
        model = load_model_or_spec(model, map_location=str(resolve_device("auto")))
    exp = make_experiment(data)
    return evaluate_split(model, exp, split, data, protocol or EvalConfig(), max_images, examples, progress)


def demo_config(
    dataset: str = "synthetic_textures",
    run_dir: str = "runs/demo",
    steps: int | None = None,
    data_root: str | None = None,
    fold: int | None = 0,
    max_images: int | None = None,
) -> TrainConfig:
    """The demo's training config: recipe ``demo_synthetic`` or ``demo_msrc_v2`` (any other manifest: the MSRC
    recipe's model and schedule on that dataset), with the given folder, steps, data root, fold and image cap."""
    recipe = get_recipe("demo_synthetic" if dataset == "synthetic_textures" else "demo_msrc_v2")
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
            "per-class IoU (all labels, generalised zero-shot)",
        ),
        "loss_curve.png": plot_loss_curve(MetricsLog(run_dir / "metrics.jsonl").read()),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
    atomic_write_text(out / "report.md", _report_markdown(metrics, result, list(figures)))
    return out


def _fmt(v: float | None) -> str:
    pct = percent(v)
    return "n/a" if pct is None else f"{pct:.1f}"


def _report_markdown(metrics: dict, result: EvalResult, figures: list[str]) -> str:
    a, u = result.all_labels, result.unseen_only
    lines = [
        f"# lseg_nb demo report ({metrics['dataset']}, fold {metrics['fold']})",
        "",
        f"Unseen classes (never training targets): {', '.join(metrics['unseen_classes']) or 'none'}",
        f"Evaluation protocol: {result.protocol or result.mode}; {result.num_images} test images.",
        "",
        "| setting | mIoU | pixel acc | seen mIoU | unseen mIoU | harmonic |",
        "|---|---|---|---|---|---|",
        f"| all labels (generalised) | {_fmt(a.miou)} | {_fmt(a.pixel_acc)} | {_fmt(a.seen_miou)} | "
        f"{_fmt(a.unseen_miou)} | {_fmt(a.harmonic_iou)} |",
    ]
    if u is not None:
        b = result.unseen_baseline
        lines.append(f"| unseen labels only (ZS3Net-style) | {_fmt(u.miou)} | {_fmt(u.pixel_acc)} | | | |")
        lines.append(
            f"| chance for unseen-only: majority class ({b.majority_class}) | {_fmt(b.majority_miou)} | "
            f"{_fmt(b.majority_pixel_acc)} | | | |"
        )
        lines.append(
            f"| chance for unseen-only: uniform guess over {b.num_labels} labels | {_fmt(b.uniform_miou)} | "
            f"{_fmt(b.uniform_pixel_acc)} | | | |"
        )
    lines += ["", f"Training time: {metrics['train_seconds']} s.", ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def run_demo(cfg: TrainConfig | None = None) -> Path:
    """Train (or resume) ``cfg`` (default :func:`demo_config`), evaluate seen vs unseen on the test split and write
    the report folder ``<run_dir>/report``."""
    cfg = cfg or demo_config()
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    seconds = time.perf_counter() - t0
    result = evaluate_split(
        trainer.model,
        trainer.exp,
        cfg.data.test_split,
        cfg.data,
        cfg.eval,
        cfg.data.max_images,
        examples=4,
        progress=cfg.progress,
    )
    return write_report(Path(cfg.run_dir), result, trainer.exp, cfg, seconds)
