"""Command line: ``lseg-nb train|evaluate|benchmark|predict|export|demo|convert|models|recipes|prepare`` (also
``python -m lseg_nb``).

``train`` takes the same :class:`~lseg_nb.config.TrainConfig` the notebooks use: ``--config run.json|yaml`` or
``--preset RECIPE`` set the starting point, tyro flags (``--steps 100 --model.features 128``) override it, and
``--dry-run`` prints the fully resolved config as JSON without training, then checks the data
(:mod:`lseg_nb.apps.cli_check`; ``--no-data-check`` skips that).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from dataclasses import dataclass
from typing import Literal

import tyro

from lseg_nb.apps.cli_args import parse_args
from lseg_nb.apps.cli_compare import cmd_compare
from lseg_nb.apps.cli_errors import USER_ERRORS, run_command  # noqa: F401 - USER_ERRORS: public
from lseg_nb.apps.cli_eval import cmd_benchmark, cmd_evaluate
from lseg_nb.config import (
    MODEL_CONFIGS,
    RECIPE_NOTES,
    ConfigError,
    EvalConfig,
    TrainConfig,
    get_recipe,
    list_recipes,
    to_dict,
)
from lseg_nb.config.serialize import require
from lseg_nb.utils.errors import printable
from lseg_nb.utils.io import check_output_dir
from lseg_nb.utils.labels import LabelSplit, labels_from_args
from lseg_nb.utils.lazy import lazy_module

# imported when a command runs, not for --help, `models` or `recipes` (torch alone takes seconds)
batch = lazy_module("lseg_nb.apps.batch")
checkpoints = lazy_module("lseg_nb.checkpoints")
cli_check = lazy_module("lseg_nb.apps.cli_check")  # reads images: numpy, PIL, the dataset classes
device = lazy_module("lseg_nb.utils.device")
engine_batch = lazy_module("lseg_nb.engine.batch")
export = lazy_module("lseg_nb.apps.export")
pipeline = lazy_module("lseg_nb.apps.pipeline")
predict = lazy_module("lseg_nb.apps.predict")
registry = lazy_module("lseg_nb.data.benchmarks.registry")
runs = lazy_module("lseg_nb.engine.runs")

USAGE = """usage: lseg-nb COMMAND [options]   (lseg-nb COMMAND --help for details)

commands:
  demo       train + evaluate the small model offline (synthetic data by default) and write a report
  train      train an LSeg model (--config FILE or --preset RECIPE, then field flags; --dry-run to inspect)
  evaluate   evaluate a run folder (its recipe's protocol, or --mode/--official ...) or a model spec
             such as maskclip:ViT-B-16/openai on a dataset split
  benchmark  score weights (e.g. a converted official checkpoint) on a paper benchmark with its protocol,
             or a whole open-vocabulary suite (trainingfree, crossdataset)
  compare    two models on the same images: a metric's difference, its bootstrap interval and p-value
  predict    segment images with any labels: a figure of one, or masks/probs/features of many
  export     export a model to ONNX (labels baked in, or --text-input), validated with onnxruntime
  convert    convert an official LSeg checkpoint (.ckpt) to lseg_nb safetensors
  models     list named model configs
  recipes    list named recipes (whole training + evaluation settings)
  prepare    check (or convert) a local copy of a benchmark: pascal5i, coco20i, fss1000, ade20k150, or a
             suite dataset (sclip_voc21 ... catseg_voc20b)
  check      validate your own dataset (a manifest and its images/labels) and print a per-split summary
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
class PredictArgs:
    """Segment images with free-form labels: one image to a figure (--image, --out), or many images to masks,
    overlays, probabilities and features (IMAGES... --out-dir OUT; formats in docs/predict.md).

    Labels: ``--labels sky grass cow`` or ``--labels "sky, grass, cow"`` (commas separate classes, as in the
    label explorer); ``"sofa|couch"`` is one class with two names (it scores the best of them). Put IMAGES
    before --labels: ``lseg-nb predict photos/ --weights W --out-dir OUT --labels sky grass``.
    """

    weights: str
    """run folder, .safetensors file or training-free model spec such as naclip:ViT-B-16/openai"""
    images: tyro.conf.Positional[tuple[str, ...]] = ()
    """image files, folders (searched recursively), glob patterns or @list.txt, written to --out-dir"""
    image: str | None = None
    """one image to draw a figure of (with --out)"""
    labels: tuple[str, ...] = ()
    labels_file: str | None = None
    """read the labels from a file instead: one class per line"""
    out: str = "prediction.png"
    """the figure of --image"""
    out_dir: str | None = None
    """output folder for IMAGES: masks/, overlays/, probs/, features/, labels.json, predictions.jsonl"""
    save: tuple[str, ...] = ("mask",)
    """what to write for IMAGES: any of mask, overlay, probs, features (comma- or space-separated)"""
    overwrite: bool = False
    """redo images whose outputs exist (and allow a folder written with other labels or model)"""
    feature_recipe: Literal["native", "openscene", "vlmaps"] = "native"
    """how features are extracted (docs/predict.md): lseg_nb's pass, or OpenScene's / VLMaps' recipe"""
    feature_size: tuple[int, int] | None = None
    """resize the features to H W (default: the recipe's resolution)"""
    num_workers: int = 0
    """DataLoader workers decoding images"""
    batch_size: int = 1
    """consecutive images of the same size run through the network together (a GPU's speed-up)"""
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


@dataclass(frozen=True)
class ExportArgs:
    """Export a model to ONNX: normalised images (B, 3, H, W) -> logits (B, K, H, W), validated with onnxruntime."""

    weights: str
    """run folder, .safetensors file or training-free model spec such as maskclip:ViT-B-16/openai"""
    out: str
    """the .onnx file to write"""
    labels: tuple[str, ...] | None = None
    """labels baked into the graph ('sofa|couch' = one class with two names); or use --text-input"""
    text_input: bool = False
    """take the label embeddings (K, D) as a second input instead of baking labels in"""
    exporter: Literal["dynamo", "torchscript"] = "dynamo"
    """torch.onnx exporter (torchscript: CNN LSeg only, faster)"""
    opset: int = 18
    tolerance: float = 1e-4
    """refuse when max |onnx - torch| > tolerance * max(1, max |logit|)"""


@dataclass(frozen=True)
class PrepareArgs:
    """Check (or convert) a local copy of a paper benchmark; nothing is downloaded."""

    benchmark: tyro.conf.Positional[str]
    """pascal5i, coco20i, fss1000 or ade20k150 (or the official names pascal, coco, fss, ade20k), or a suite
    dataset: sclip_voc21 ... sclip_ade20k, catseg_ade847 ... catseg_voc20b (docs/protocols-trainingfree.md)"""
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
    default = runs.load_run_config(config) if config else get_recipe(preset) if preset else TrainConfig()
    return parse_args(TrainConfig, args, "lseg-nb train", default)


def cmd_train(args: list[str]) -> None:
    dry = _pop_flag(args, "--dry-run")
    skip_data = _pop_flag(args, "--no-data-check")  # a config inspected on a machine without the data
    cfg = resolve_train_config(args)
    if dry:
        print(json.dumps(to_dict(cfg), indent=2))
        if not skip_data:
            cli_check.check_train_data(cfg.data)
        return
    summary = pipeline.train_run(cfg)
    if summary.loss_curve is not None:  # rank 0 (the only process under plain `lseg-nb train`)
        print(summary.text())


def cmd_demo(args: list[str]) -> None:
    a = parse_args(DemoArgs, args, "lseg-nb demo")
    fold = "recipe" if a.fold is None else a.fold
    cfg = pipeline.demo_config(a.dataset, a.run_dir, a.steps, a.data_root, fold, a.max_images)
    report = pipeline.run_demo(cfg, examples=a.examples)
    print((report / "report.md").read_text())
    print(f"report written to {report}")


def cmd_predict(args: list[str]) -> None:
    a = parse_args(PredictArgs, args, "lseg-nb predict")
    labels = labels_from_args(a.labels, a.labels_file)
    if len(labels) == 1:
        words = labels[0].split()
        several = (  # "sky road car" in one pair of quotes is one label with three words
            f"; if {labels[0]!r} is {len(words)} labels, separate them with commas (--labels "
            f"'{', '.join(words)}') or pass them as separate words"
            if len(words) > 1
            else ""
        )
        print(
            f"note: one label ({labels[0]!r}): the softmax over one label is always 100%, so every pixel is "
            f"that label; add the other things in the image (or 'background'){several}"
        )
    if a.images or a.out_dir:
        return _predict_many(a, labels)
    if a.image is None:
        raise ConfigError(
            "lseg-nb predict: give --image FILE (a figure), or IMAGES... --out-dir OUT (many images)"
        )
    result = predict.predict_image(a.weights, a.image, labels, a.out, a.eval)
    print(f"protocol: {result.inference}; image {a.image}")
    for label, share in result.shares.items():
        print(f"{label:>24s}: {100 * share:5.1f}% of pixels")
    print(f"figure written to {a.out}")


def _predict_many(a: PredictArgs, labels: list[str]) -> None:
    if a.image is not None or not a.images or not a.out_dir:
        raise ConfigError(
            "lseg-nb predict: many images take IMAGES... and --out-dir OUT (not --image); one image takes --image"
        )
    split = LabelSplit.from_labels(labels)
    check_output_dir(a.out_dir, "--out-dir")
    engine_batch.collect_images(a.images)  # bad inputs fail before the model loads
    model = runs.load_model(a.weights, map_location=str(device.resolve_device("auto")))
    window = int(model.config.crop_size)
    print(f"protocol: {a.eval.describe(window)}; {split.num_classes} classes; saving {', '.join(a.save)}")
    summary = batch.predict_folder(
        model, a.images, split, a.out_dir, a.eval, a.save, a.overwrite, a.feature_size, a.feature_recipe,
        a.weights, a.num_workers, a.batch_size,
    )  # fmt: skip
    print(summary.line())
    for key, why in summary.failed[:10]:
        print(f"  failed: {key}: {why}")
    if summary.failed:
        sys.exit(1)


def cmd_export(args: list[str]) -> None:
    a = parse_args(ExportArgs, args, "lseg-nb export")
    # predict's and the label explorer's syntax: a blank entry or a repeated name is refused, not dropped
    labels = None if a.labels is None else labels_from_args(a.labels)
    report = export.export_weights(
        a.weights, a.out, labels, a.text_input, exporter=a.exporter, opset=a.opset, tolerance=a.tolerance
    )
    print(report.text())


CONVERT_USAGE = (
    "usage: lseg-nb convert OFFICIAL.ckpt OUT.safetensors   (an official LSeg checkpoint to lseg_nb weights)"
)


def cmd_convert(args: list[str]) -> None:
    if {"-h", "--help"} & set(args):
        print(CONVERT_USAGE)
        return
    if len(args) != 2 or any(a.startswith("-") for a in args):
        raise ConfigError(CONVERT_USAGE)
    checkpoints.convert_main(args[0], args[1])


def cmd_models(args: list[str]) -> None:
    """``lseg-nb models [NAME] [--json]``: one line per named model config, or one config in full as JSON."""
    if {"-h", "--help"} & set(args):
        print(
            "usage: lseg-nb models [NAME] [--json]   (one line per named model config; NAME or --json: JSON)"
        )
        return
    names = [a for a in args if not a.startswith("-")]
    unknown = [a for a in args if a.startswith("-") and a != "--json"] + [
        n for n in names if n not in MODEL_CONFIGS
    ]
    if unknown:
        raise ConfigError(f"lseg-nb models: unknown {unknown}; named configs: {list(MODEL_CONFIGS)}")
    if names or "--json" in args:
        chosen = {n: to_dict(MODEL_CONFIGS[n]) for n in (names or MODEL_CONFIGS)}
        print(json.dumps(chosen if len(chosen) > 1 else next(iter(chosen.values())), indent=2))
        return
    for name, cfg in MODEL_CONFIGS.items():
        print(
            f"{name:18s} backbone={cfg.backbone:24s} text={cfg.text.kind}:{cfg.text.name} crop={cfg.crop_size}"
        )


def _recipe_line(name: str) -> str:
    cfg = get_recipe(name)
    return (
        f"{name:26s} model={cfg.model.backbone} crop={cfg.model.crop_size} data={cfg.data.dataset} "
        f"fold={cfg.data.fold} steps={cfg.steps} eval={cfg.eval.name}"
    )


def cmd_recipes(args: list[str]) -> None:
    """``lseg-nb recipes [NAME]``: one line per recipe, or one recipe with its sources and differences."""
    if {"-h", "--help"} & set(args):
        print(
            "usage: lseg-nb recipes [NAME]   (one line per recipe; NAME: its notes, the sources of every setting "
            "and what differs from the official code; `lseg-nb train --preset NAME --dry-run`: the whole config)"
        )
        return
    if len(args) > 1 or (args and args[0].startswith("-")):
        raise ConfigError("usage: lseg-nb recipes [NAME]")
    if not args:
        for name in list_recipes():
            print(_recipe_line(name))
        print(
            "\nlseg-nb recipes NAME: its sources and differences; lseg-nb train --preset NAME --dry-run: the config"
        )
        return
    name = args[0]
    print(_recipe_line(name))  # an unknown name is refused here, listing the known ones
    print()
    print(textwrap.fill(RECIPE_NOTES.get(name, "(no notes)"), width=110))
    print(f"\nthe whole config: lseg-nb train --preset {name} --dry-run")


def cmd_prepare(args: list[str]) -> None:
    a = parse_args(PrepareArgs, args, "lseg-nb prepare")
    for line in registry.prepare(a.benchmark, a.root, a.out, a.splits):
        print(line)


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "benchmark": cmd_benchmark,
    "compare": cmd_compare,
    "predict": cmd_predict,
    "export": cmd_export,
    "demo": cmd_demo,
    "convert": cmd_convert,
    "models": cmd_models,
    "recipes": cmd_recipes,
    "prepare": cmd_prepare,
    "check": lambda args: cli_check.cmd_check(args),
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
