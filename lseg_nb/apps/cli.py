"""Command line: ``lseg-nb train|evaluate|benchmark|predict|demo|convert|models|recipes|prepare`` (also
``python -m lseg_nb``).

``train`` takes the same :class:`~lseg_nb.config.TrainConfig` the notebooks use: ``--config run.json|yaml`` or
``--preset RECIPE`` set the starting point, tyro flags (``--steps 100 --model.features 128``) override it, and
``--dry-run`` prints the fully resolved config as JSON without training.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from lseg_nb.apps.benchmark_cli import cmd_benchmark, evaluate_episodic_run
from lseg_nb.apps.cli_args import parse_args
from lseg_nb.apps.cli_errors import USER_ERRORS, run_command  # noqa: F401 - USER_ERRORS: public
from lseg_nb.apps.pipeline import demo_config, evaluate_model, evaluate_run, run_demo, train_run
from lseg_nb.apps.predict import predict_image
from lseg_nb.apps.reports import evaluation_record, evaluation_table
from lseg_nb.checkpoints import convert_main
from lseg_nb.config import (
    MODEL_CONFIGS,
    OFFICIAL_EVAL,
    RECIPE_NOTES,
    ConfigError,
    DataConfig,
    EvalConfig,
    TrainConfig,
    get_recipe,
    list_recipes,
    load_config,
    to_dict,
)
from lseg_nb.config.serialize import require
from lseg_nb.data.benchmarks.registry import prepare
from lseg_nb.engine.runs import load_run_config
from lseg_nb.utils.errors import printable
from lseg_nb.utils.io import atomic_save_figure, atomic_write_text, check_output_path
from lseg_nb.viz.segmentation import plot_examples

USAGE = """usage: lseg-nb COMMAND [options]   (lseg-nb COMMAND --help for details)

commands:
  demo       train + evaluate the small model offline (synthetic data by default) and write a report
  train      train an LSeg model (--config FILE or --preset RECIPE, then field flags; --dry-run to inspect)
  evaluate   evaluate a run folder (its recipe's protocol, or --mode/--official ...) or a model spec
             such as maskclip:ViT-B-16/openai on a dataset split
  benchmark  score weights (e.g. a converted official checkpoint) on a paper benchmark with its protocol
  predict    segment one image with any labels and save an overlay figure
  convert    convert an official LSeg checkpoint (.ckpt) to lseg_nb safetensors
  models     list named model configs
  recipes    list named recipes (whole training + evaluation settings)
  prepare    check (or convert) a local copy of a paper benchmark: pascal5i, coco20i, fss1000, ade20k150
"""


@dataclass(frozen=True)
class DemoArgs:
    """Train the small CPU model on a zero-shot fold, evaluate seen vs unseen classes, write a report."""

    dataset: str = "synthetic_textures"
    """manifest name (synthetic_textures, msrc_v2) or YAML path"""
    data_root: str | None = None
    run_dir: str = "runs/demo"
    steps: int | None = None
    """training steps (default: the recipe's, 250 synthetic / 900 MSRC-v2)"""
    fold: int | None = None
    """zero-shot fold (default: the recipe's, 0 synthetic / 4 = 'neighbours' MSRC-v2)"""
    max_images: int | None = None
    """cap images per split (smoke runs)"""
    examples: int = 4
    """test images in report/examples.png, chosen for class coverage (each adds the most classes not yet shown)"""

    def __post_init__(self) -> None:
        require(self.steps is None or self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(self.fold is None or self.fold >= 0, "fold", f"must be >= 0 or None, got {self.fold}")
        require(
            self.max_images is None or self.max_images >= 1,
            "max_images",
            f"must be >= 1 (or omitted for all images), got {self.max_images}",
        )
        require(self.examples >= 0, "examples", f"must be >= 0, got {self.examples}")


@dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a trained run. Protocol: the run's recipe (``eval`` in its config.json) unless overridden.

    Zero-shot folds report the generalised all-labels setting and the unseen-labels-only setting (ZS3Net/SPNet
    style; the LSeg paper's zero-shot numbers are the episodic protocol, see the README), with chance baselines.
    """

    run: str | None = None
    """run folder (with config.json and model.safetensors); evaluated on its own dataset/fold unless overridden"""
    model: str | None = None
    """instead of --run: a .safetensors file or a training-free model spec such as maskclip:ViT-B-16/openai
    (sclip:, naclip:; PRETRAINED may be a local file or none); needs --dataset, --fold adds the unseen split"""
    split: str = "test"
    dataset: str | None = None
    data_root: str | None = None
    fold: int | None = None
    official: bool = False
    """use the official multi-scale protocol (base 520, scales 0.5-1.75, flip, stride 2/3)"""
    mode: Literal["single", "sliding", "multiscale"] | None = None
    base_size: int | None = None
    """multiscale: long side = ceil(base_size * scale) (official 520); default relative to the image"""
    scales: tuple[float, ...] | None = None
    flip: bool | None = None
    stride_ratio: float | None = None
    amp: Literal["none", "bf16", "fp16"] | None = None
    """autocast precision of the network (fp16 needs a GPU); recorded in the protocol name"""
    window_batch: int | None = None
    """sliding/multiscale: windows per forward pass (memory bound; results unchanged)"""
    compile: bool | None = None
    """torch.compile the image encoder (pays off on a GPU over many images)"""
    num_workers: int | None = None
    """data-loading worker processes (default 0 on CPU, min(8, CPUs) on a GPU)"""
    max_images: int | None = None
    out: str | None = None
    """JSON file for the metrics (default RUN/eval_SPLIT_MODE.json, runs/eval/MODEL/eval_DATASET_SPLIT_MODE.json)"""
    json: bool = False
    """print the metrics as JSON on stdout instead of a table"""
    examples: int = 4
    """images drawn into OUT_examples.png (next to the JSON), chosen for class coverage; 0: no figure"""
    calibrate_seen: bool = False
    """zero-shot fold: also score all labels after seen-bias calibration (a seen-logit offset fitted on val)"""


@dataclass(frozen=True)
class PredictArgs:
    """Segment one image with free-form labels."""

    weights: str
    """run folder, .safetensors file or training-free model spec such as maskclip:ViT-B-16/openai"""
    image: str
    labels: tuple[str, ...]
    out: str = "prediction.png"
    mode: Literal["single", "sliding", "multiscale"] = "single"
    amp: Literal["none", "bf16", "fp16"] = "none"
    """autocast precision of the network (fp16 needs a GPU); the GPU is used when there is one"""
    window_batch: int = 16
    """sliding/multiscale: windows per forward pass"""
    compile: bool = False
    """torch.compile the image encoder"""


@dataclass(frozen=True)
class PrepareArgs:
    """Check (or convert) a local copy of a paper benchmark; nothing is downloaded."""

    benchmark: tyro.conf.Positional[str]
    """pascal5i, coco20i, fss1000 or ade20k150 (or the official names pascal, coco, fss, ade20k)"""
    root: str
    """the local copy (e.g. Datasets_HSN, or the folder holding VOC2012/, COCO2014/, FSS-1000/, ADEChallengeData2016/)"""
    out: str | None = None
    """where converted files go (COCO-20i from instances json); the others are checked in place"""
    splits: str | None = None
    """HSNet's data/splits folder (PASCAL-5i lists; COCO-20i fold pickles; FSS-1000 lists)"""


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


def _pop_flag(args: list[str], name: str) -> bool:
    if name in args:
        args.remove(name)
        return True
    return False


def resolve_train_config(args: list[str]) -> TrainConfig:
    """The config ``lseg-nb train ARGS`` would run: ``--config`` or ``--preset`` (not both), then flags.

    ``--config RUN/config.json`` (a run's own config) trains in ``RUN``, ``--run-dir`` wherever it says
    (:func:`~lseg_nb.engine.runs.load_run_config`)."""
    args = list(args)
    config, preset = _pop_option(args, "--config"), _pop_option(args, "--preset")
    if config and preset:
        raise ConfigError(
            "give --config FILE or --preset RECIPE, not both (a config file is already a recipe)"
        )
    default = load_run_config(config) if config else get_recipe(preset) if preset else TrainConfig()
    return parse_args(TrainConfig, args, "lseg-nb train", default)


def cmd_train(args: list[str]) -> None:
    dry = _pop_flag(args, "--dry-run")
    cfg = resolve_train_config(args)
    if dry:
        print(json.dumps(to_dict(cfg), indent=2))
        return
    summary = train_run(cfg)
    if summary.loss_curve is not None:  # rank 0 (the only process under plain `lseg-nb train`)
        print(summary.text())


def cmd_demo(args: list[str]) -> None:
    a = parse_args(DemoArgs, args, "lseg-nb demo")
    fold = "recipe" if a.fold is None else a.fold
    cfg = demo_config(a.dataset, a.run_dir, a.steps, a.data_root, fold, a.max_images)
    report = run_demo(cfg, examples=a.examples)
    print((report / "report.md").read_text())
    print(f"report written to {report}")


def _protocol(a: EvaluateArgs, run_eval: EvalConfig) -> EvalConfig:
    base = OFFICIAL_EVAL if a.official else run_eval
    changes = {
        k: v
        for k, v in (
            ("mode", a.mode),
            ("base_size", a.base_size),
            ("scales", a.scales),
            ("flip", a.flip),
            ("stride_ratio", a.stride_ratio),
            ("amp", a.amp),
            ("window_batch", a.window_batch),
            ("compile", a.compile),
        )
        if v is not None
    }
    return dataclasses.replace(base, **changes)


def cmd_evaluate(args: list[str]) -> None:
    a = parse_args(EvaluateArgs, args, "lseg-nb evaluate")
    if (a.run is None) == (a.model is None):
        raise ConfigError(
            "give exactly one of --run RUN_FOLDER or --model WEIGHTS_OR_SPEC (e.g. --model maskclip:ViT-B-16/openai)"
        )
    if a.max_images is not None and a.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1 (or omitted for all images), got {a.max_images}")
    if a.examples < 0:
        raise ConfigError(f"--examples must be >= 0 (0: no example figure), got {a.examples}")
    if a.model is not None:
        if a.dataset is None:
            raise ConfigError(
                f"--model {a.model} has no run folder to take the data from: add --dataset (e.g. --dataset "
                "msrc_v2 --fold 0)"
            )
        data = DataConfig(dataset=a.dataset, data_root=a.data_root, fold=a.fold, num_workers=a.num_workers)
        protocol = _protocol(a, EvalConfig())
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", a.model).strip("_")
        default = Path("runs", "eval", name, f"eval_{Path(a.dataset).stem}_{a.split}_{protocol.mode}.json")
        out = check_output_path(a.out or default, "--out")
        result = evaluate_model(
            a.model, data, a.split, protocol, a.max_images, a.examples, calibrate_seen=a.calibrate_seen
        )
    else:
        run = Path(a.run)
        if not (run / "config.json").is_file():
            raise FileNotFoundError(
                f"{run} is not a run folder (no config.json): pass --run RUN_DIR of a finished run, or --model"
            )
        saved = load_config(TrainConfig, run / "config.json")
        changes = {
            k: v
            for k, v in (
                ("dataset", a.dataset),
                ("data_root", a.data_root),
                ("fold", a.fold),
                ("num_workers", a.num_workers),
            )
            if v is not None
        }
        data = dataclasses.replace(saved.data, **changes)
        if saved.eval.protocol == "episodic":
            if a.official or a.mode is not None or a.calibrate_seen:
                raise ConfigError(
                    f"{run} is scored with its recipe's episodic protocol: drop --official / --mode / "
                    "--calibrate-seen"
                )
            evaluate_episodic_run(run, data, a.max_images, a.out, a.json)
            return
        protocol = _protocol(a, saved.eval)
        out = check_output_path(a.out or run / f"eval_{a.split}_{protocol.mode}.json", "--out")
        result = evaluate_run(
            run, a.split, data, protocol, a.max_images, a.examples, calibrate_seen=a.calibrate_seen
        )
    record = evaluation_record(result, Path(data.dataset).stem, a.split, data.fold)
    text = json.dumps(record, indent=2, allow_nan=False)
    atomic_write_text(out, text + "\n")
    figure = out.with_name(f"{out.stem}_examples.png") if result.examples else None
    if figure is not None:
        names = list(result.all_labels.class_names)
        triples = [(e.image, e.pred, e.target) for e in result.examples]
        atomic_save_figure(plot_examples(triples, names, result.unseen or ()), figure)
    if a.json:
        print(text)  # stdout holds only the JSON, so it can be piped
    else:
        print(evaluation_table(result, Path(data.dataset).stem, a.split, data.fold))
        print(f"metrics (with confusion matrices) written to {out}")
        if figure is not None:
            print(f"{len(result.examples)} example images drawn into {figure}")


def cmd_predict(args: list[str]) -> None:
    a = parse_args(PredictArgs, args, "lseg-nb predict")
    areas = predict_image(
        a.weights,
        a.image,
        list(a.labels),
        a.out,
        a.mode,
        amp=a.amp,
        window_batch=a.window_batch,
        compile=a.compile,
    )
    for label, share in areas.items():
        print(f"{label:>24s}: {100 * share:5.1f}% of pixels")
    print(f"figure written to {a.out}")


def cmd_convert(args: list[str]) -> None:
    if len(args) != 2 or any(a.startswith("-") for a in args):
        raise ConfigError("usage: lseg-nb convert OFFICIAL.ckpt OUT.safetensors")
    convert_main(args[0], args[1])


def cmd_models(args: list[str]) -> None:
    for name, cfg in MODEL_CONFIGS.items():
        print(
            f"{name:18s} backbone={cfg.backbone:24s} text={cfg.text.kind}:{cfg.text.name} crop={cfg.crop_size}"
        )


def cmd_recipes(args: list[str]) -> None:
    for name in list_recipes():
        cfg = get_recipe(name)
        print(
            f"{name:22s} model={cfg.model.backbone} crop={cfg.model.crop_size} data={cfg.data.dataset} "
            f"fold={cfg.data.fold} steps={cfg.steps} eval={cfg.eval.name}"
        )
        print(f"{'':22s} {RECIPE_NOTES.get(name, '')}")


def cmd_prepare(args: list[str]) -> None:
    a = parse_args(PrepareArgs, args, "lseg-nb prepare")
    for line in prepare(a.benchmark, a.root, a.out, a.splits):
        print(line)


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "benchmark": cmd_benchmark,
    "predict": cmd_predict,
    "demo": cmd_demo,
    "convert": cmd_convert,
    "models": cmd_models,
    "recipes": cmd_recipes,
    "prepare": cmd_prepare,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lseg-nb`` console script; exit codes and error handling in
    :func:`~lseg_nb.apps.cli_errors.run_command` (0 done, 2 a user error, 130 Ctrl-C, 1 a bug)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"lseg-nb: unknown command {printable(cmd)!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return run_command(cmd, lambda: COMMANDS[cmd](rest), argv)


if __name__ == "__main__":
    sys.exit(main())
