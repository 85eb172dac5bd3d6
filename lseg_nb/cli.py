"""Command line: ``lseg-nb train|evaluate|predict|demo|convert|models`` (also ``python -m lseg_nb``).

``train`` takes the same :class:`~lseg_nb.config.TrainConfig` the notebooks use: ``--config run.json|yaml`` and/or
``--preset MODEL_NAME`` set the starting point, and tyro flags (``--steps 100 --model.features 128``) override it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from lseg_nb.config import ConfigError, DataConfig, TrainConfig, load_config

USAGE = """usage: lseg-nb COMMAND [options]   (lseg-nb COMMAND --help for details)

commands:
  demo       train + evaluate the small model offline (synthetic data by default) and write a report
  train      train an LSeg model (--config FILE, --preset MODEL_NAME, then field flags)
  evaluate   evaluate a run folder, weights file or training-free model spec (maskclip:ViT-B-16/openai)
  predict    segment one image with any labels and save an overlay figure
  convert    convert an official LSeg checkpoint (.ckpt) to lseg_nb safetensors
  models     list named model configs
"""


@dataclass(frozen=True)
class DemoArgs:
    """Train the small CPU model on a zero-shot fold, evaluate seen vs unseen classes, write a report."""

    dataset: str = "synthetic_textures"
    """manifest name (synthetic_textures, msrc_v2) or YAML path"""
    data_root: str | None = None
    run_dir: str = "runs/demo"
    steps: int | None = None
    """training steps (default 250 synthetic / 400 real)"""
    fold: int | None = 0
    max_images: int | None = None
    """cap images per split (smoke runs)"""


@dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a run or any model; zero-shot folds report unseen-only (paper) and all-label (generalised) metrics."""

    run: str | None = None
    """run folder (with config.json and model.safetensors); evaluated on its own dataset/fold unless overridden"""
    model: str | None = None
    """instead of --run: a .safetensors file or a training-free model spec such as maskclip:ViT-B-16/openai
    (sclip:, naclip:; PRETRAINED may be a local file or none); needs --dataset, --fold adds the unseen split"""
    split: str = "test"
    dataset: str | None = None
    data_root: str | None = None
    fold: int | None = None
    mode: Literal["single", "sliding", "multiscale"] = "single"
    max_images: int | None = None
    out: str | None = None
    """JSON file for the metrics (default RUN/eval_SPLIT_MODE.json, runs/eval/MODEL/eval_DATASET_SPLIT_MODE.json)"""


@dataclass(frozen=True)
class PredictArgs:
    """Segment one image with free-form labels."""

    weights: str
    """run folder, .safetensors file or training-free model spec such as maskclip:ViT-B-16/openai"""
    image: str
    labels: tuple[str, ...]
    out: str = "prediction.png"
    mode: Literal["single", "sliding", "multiscale"] = "single"


def _pop_option(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return None


def cmd_train(args: list[str]) -> None:
    from lseg_nb.models.lseg import get_config
    from lseg_nb.train import train

    config, preset = _pop_option(args, "--config"), _pop_option(args, "--preset")
    default = load_config(TrainConfig, config) if config else TrainConfig()
    if preset:
        default = dataclasses.replace(default, model=get_config(preset))
    cfg = tyro.cli(TrainConfig, default=default, args=args, prog="lseg-nb train")
    print(f"run folder: {train(cfg)}")


def cmd_demo(args: list[str]) -> None:
    from lseg_nb.pipeline import demo_config, run_demo

    a = tyro.cli(DemoArgs, args=args, prog="lseg-nb demo")
    report = run_demo(demo_config(a.dataset, a.run_dir, a.steps, a.data_root, a.fold, a.max_images))
    print((report / "report.md").read_text())
    print(f"report written to {report}")


def cmd_evaluate(args: list[str]) -> None:
    from lseg_nb.pipeline import evaluate_model, evaluate_run

    a = tyro.cli(EvaluateArgs, args=args, prog="lseg-nb evaluate")
    if (a.run is None) == (a.model is None):
        raise ConfigError(
            "give exactly one of --run RUN_FOLDER or --model WEIGHTS_OR_SPEC (e.g. --model maskclip:ViT-B-16/openai)"
        )
    if a.model is not None:
        if a.dataset is None:
            raise ConfigError(
                f"--model {a.model} has no run folder to take the data from: add --dataset (e.g. --dataset "
                "msrc_v2 --fold 0)"
            )
        data = DataConfig(dataset=a.dataset, data_root=a.data_root, fold=a.fold)
        result = evaluate_model(a.model, data, a.split, a.mode, a.max_images)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", a.model).strip("_")
        out = Path(
            a.out or Path("runs", "eval", name, f"eval_{Path(a.dataset).stem}_{a.split}_{a.mode}.json")
        )
    else:
        run = Path(a.run)
        data = (
            load_config(TrainConfig, run / "config.json").data
            if (run / "config.json").exists()
            else DataConfig()
        )
        changes = {
            k: v
            for k, v in (("dataset", a.dataset), ("data_root", a.data_root), ("fold", a.fold))
            if v is not None
        }
        result = evaluate_run(run, a.split, dataclasses.replace(data, **changes), a.mode, a.max_images)
        out = Path(a.out) if a.out else run / f"eval_{a.split}_{a.mode}.json"
    result.save_json(out)
    print(result.summary() if hasattr(result, "summary") else result.to_dict())
    print(f"metrics written to {out}")


def cmd_predict(args: list[str]) -> None:
    from lseg_nb.predict import predict_image

    a = tyro.cli(PredictArgs, args=args, prog="lseg-nb predict")
    areas = predict_image(a.weights, a.image, list(a.labels), a.out, a.mode)
    for label, share in areas.items():
        print(f"{label:>24s}: {100 * share:5.1f}% of pixels")
    print(f"figure written to {a.out}")


def cmd_convert(args: list[str]) -> None:
    from lseg_nb.checkpoints import convert_main

    if len(args) != 2 or any(a.startswith("-") for a in args):
        raise ConfigError("usage: lseg-nb convert OFFICIAL.ckpt OUT.safetensors")
    convert_main(args[0], args[1])


def cmd_models(args: list[str]) -> None:
    from lseg_nb.models.lseg import MODEL_CONFIGS

    for name, cfg in MODEL_CONFIGS.items():
        print(
            f"{name:18s} backbone={cfg.backbone:24s} text={cfg.text.kind}:{cfg.text.name} crop={cfg.crop_size}"
        )


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "demo": cmd_demo,
    "convert": cmd_convert,
    "models": cmd_models,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lseg-nb`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"lseg-nb: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        COMMANDS[cmd](rest)
    except (ConfigError, FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        if os.environ.get("LSEG_NB_DEBUG") == "1":
            raise
        print(f"lseg-nb {cmd}: error: {e}", file=sys.stderr)
        print("(set LSEG_NB_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
