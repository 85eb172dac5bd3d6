"""``lseg-nb evaluate`` and ``lseg-nb benchmark``: the protocol is one nested :class:`~lseg_nb.config.EvalConfig`
(``--eval.mode sliding --eval.short-side 336``), the data one nested :class:`~lseg_nb.config.DataConfig`
(``--data.fold 1``), both defaulting to the run's own; a table on stdout (or JSON with ``--json``) and a JSON
file whose name carries everything that changes the numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tyro

from lseg_nb.apps.cli_args import check_result_file, parse_args, safe_name
from lseg_nb.apps.cli_suite import cmd_suite
from lseg_nb.config import (
    OFFICIAL_EVAL,
    ConfigError,
    DataConfig,
    EvalConfig,
    TrainConfig,
    load_config,
    to_dict,
)
from lseg_nb.config.suites import SUITES
from lseg_nb.utils.io import atomic_save_figure, atomic_write_text, check_output_path, user_path
from lseg_nb.utils.lazy import lazy_module

if TYPE_CHECKING:
    from lseg_nb.data.benchmarks.base import EpisodeSource
    from lseg_nb.engine.results import EpisodicResult, EvalResult

# imported when a command runs, not for --help (torch alone takes seconds)
device = lazy_module("lseg_nb.utils.device")
episodic = lazy_module("lseg_nb.engine.episodic")
evaluation = lazy_module("lseg_nb.engine.evaluate")
registry = lazy_module("lseg_nb.data.benchmarks.registry")
reports = lazy_module("lseg_nb.apps.reports")
results = lazy_module("lseg_nb.engine.results")
runs = lazy_module("lseg_nb.engine.runs")
segmentation = lazy_module("lseg_nb.viz.segmentation")


@dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a trained run (``--run``) or any model (``--model``) on a dataset split.

    The protocol is the run's recipe (``eval`` in its config.json) unless ``--official`` or ``--eval.*`` flags
    change it; the data is the run's own unless ``--data.*`` flags change it. Zero-shot folds report the
    generalised all-labels setting and the unseen-labels-only setting (ZS3Net/SPNet style; the LSeg paper's
    zero-shot numbers are the episodic protocol), each with chance baselines.
    """

    run: str | None = None
    """run folder (config.json + model.safetensors); scored on its own data and fold unless --data.* says"""
    model: str | None = None
    """instead of --run: a .safetensors file or a training-free spec such as naclip:ViT-B-16/openai; needs
    --data.dataset"""
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    split: str = "test"
    """the split to score"""
    out: str | None = None
    """JSON file (default: RUN/eval_DATASET_SPLIT_foldF_PROTOCOL.json, or runs/eval/MODEL/... for --model)"""
    overwrite: bool = False
    """replace an existing result file that holds a different evaluation"""
    json: bool = False
    """print the result as JSON on stdout instead of a table"""
    examples: int = 4
    """images drawn into OUT_examples.png (chosen for class coverage); 0: none"""
    per_class: bool = False
    """also print the per-class IoU table (it is always in the JSON and in OUT_per_class.png)"""


def _pop(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return None


def result_name(data: DataConfig, split: str, protocol: EvalConfig) -> str:
    """``eval_DATASET_SPLIT[_foldF]_PROTOCOL[_firstN].json``: every choice that changes the numbers."""
    fold = f"_fold{data.fold}" if data.fold is not None else ""
    first = f"_first{data.max_images}" if data.max_images else ""
    return f"eval_{safe_name(Path(data.dataset).stem)}_{safe_name(split)}{fold}_{protocol.key}{first}.json"


def _identity(data: DataConfig, split: str, protocol: EvalConfig) -> dict:
    return {
        "dataset": Path(data.dataset).stem,
        "split": split,
        "fold": data.fold,
        "max_images": data.max_images,
        "protocol_config": to_dict(protocol),
    }


def cmd_evaluate(args: list[str]) -> None:
    """``lseg-nb evaluate --run RUN | --model W --data.dataset D [--data.* ...] [--official] [--eval.* ...]``."""
    args = list(args)
    run, model = _pop(args, "--run"), _pop(args, "--model")
    official = "--official" in args
    args = [a for a in args if a != "--official"]
    if (run is None) == (model is None) and not {"-h", "--help"} & set(args):
        raise ConfigError(
            "give exactly one of --run RUN_FOLDER or --model WEIGHTS_OR_SPEC (e.g. --model naclip:ViT-B-16/openai)"
        )
    if run is not None:
        config = user_path(run) / "config.json"
        if not config.is_file():
            raise FileNotFoundError(
                f"{run} is not a run folder (no config.json): pass --run RUN_DIR of a finished run, or --model"
            )
        saved = load_config(TrainConfig, config)
        default = EvaluateArgs(run=run, data=saved.data, eval=OFFICIAL_EVAL if official else saved.eval)
    else:
        # a model has no fold of its own: --data.fold F adds the zero-shot settings
        default = EvaluateArgs(
            model=model, data=DataConfig(fold=None), eval=OFFICIAL_EVAL if official else EvalConfig()
        )
    a = parse_args(EvaluateArgs, args, "lseg-nb evaluate", default)
    if run is not None and saved.eval.protocol == "episodic" and a.eval.protocol != "episodic":
        raise ConfigError(
            f"{run} is scored with its recipe's episodic protocol: drop --official / --eval.protocol (episodes "
            "take --eval.episode-size and --eval.generalised)"
        )
    if a.examples < 0:
        raise ConfigError(f"--examples must be >= 0 (0: no example figure), got {a.examples}")
    if a.model is not None and not any(t.startswith("--data.dataset") for t in args):
        raise ConfigError(
            f"--model {a.model} has no run folder to take the data from: add --data.dataset (e.g. --data.dataset "
            "msrc_v2 --data.fold 0)"
        )
    where = user_path(a.run) if a.run else Path("runs", "eval", safe_name(a.model or "model"))
    identity = {"run": a.run, "model": a.model, **_identity(a.data, a.split, a.eval)}
    out = check_output_path(Path(a.out) if a.out else where / result_name(a.data, a.split, a.eval), "--out")
    check_result_file(out, identity, a.overwrite)
    if a.run is not None:
        result = evaluation.evaluate_run(a.run, a.data, a.eval, a.split, a.examples)
    else:
        weights = runs.load_model(a.model, map_location=str(device.resolve_device("auto")))
        result = evaluation.evaluate(weights, a.data, a.eval, a.split, a.examples)
    _emit(result, out, identity, a.json, a.per_class)


def _emit(
    result: EvalResult | EpisodicResult, out: Path, identity: dict, as_json: bool, per_class: bool = False
) -> None:
    record = {"identity": identity, **result.to_dict()}
    text = json.dumps(record, indent=2, allow_nan=False)
    atomic_write_text(out, text + "\n")
    figures = []
    if isinstance(result, results.EvalResult):
        general = result.settings["all_labels"]
        names = list(general.labels.class_names)
        unseen = list(result.unseen or ())
        if result.examples:
            fig = segmentation.plot_examples(
                [(e.image, e.pred, e.target) for e in result.examples], names, unseen
            )
            figures.append(out.with_name(f"{out.stem}_examples.png"))
            atomic_save_figure(fig, figures[-1])
        title = f"per-class IoU, {general.labels.num_classes} labels ({result.protocol_name})"
        figures.append(out.with_name(f"{out.stem}_per_class.png"))
        atomic_save_figure(
            segmentation.plot_per_class_iou(general.metrics.per_class_iou, names, unseen, title), figures[-1]
        )
    if as_json:
        print(text)  # stdout holds only the JSON, so it can be piped
        return
    if isinstance(result, results.EvalResult):
        print(reports.evaluation_table(result))
        if per_class:
            print(per_class_table(result))
    else:
        print(reports.episodic_table(result))
    print(f"metrics (with confusion matrices) written to {out}")
    for path in figures:
        print(f"figure written to {path}")


def per_class_table(result: EvalResult) -> str:
    """Per-class IoU of the all-labels setting (values in %), unseen classes marked."""
    m = result.all_labels
    unseen = set(result.unseen or ())
    rows = [
        {"class": n + (" (unseen)" if c in unseen else ""), "IoU": reports.percent(v)}
        for c, (n, v) in enumerate(zip(m.class_names, m.per_class_iou, strict=True))
    ]
    return reports.format_table(rows)


@dataclass(frozen=True)
class BenchmarkArgs:
    """Score weights on a paper benchmark with its protocol: the episodic zero-shot one (pascal5i, coco20i,
    fss1000) or the official multi-scale one (ade20k150, validation split)."""

    benchmark: tyro.conf.Suppress[str] = ""
    weights: str = ""
    """run folder, .safetensors file (e.g. from `lseg-nb convert`) or a training-free spec (naclip:...)"""
    root: str = ""
    """the benchmark folder checked by `lseg-nb prepare`"""
    fold: int = 0
    splits: str | None = None
    """HSNet's data/splits folder (PASCAL-5i val lists; COCO-20i val/fold<f>.pkl)"""
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(protocol="episodic"))
    """the protocol (default: the benchmark's: episodic 480x480, or the official multi-scale for ade20k150);
    --eval.generalised adds the generalised settings (not in the paper)"""
    max_episodes: int | None = None
    """first N episodes (ade20k150: images) for quick runs; the number is then not the paper's"""
    seed: int = 0
    """COCO-20i episode seed (0 = the official test's)"""
    labels_file: str | None = None
    """label texts, one per line (default: the paper's)"""
    out: str | None = None
    """JSON file (default runs/benchmark/WEIGHTS/BENCHMARK[_foldF]_PROTOCOL.json)"""
    overwrite: bool = False
    """replace an existing result file that holds a different evaluation"""
    json: bool = False
    """print the result as JSON instead of a table"""


def cmd_benchmark(args: list[str]) -> None:
    """``lseg-nb benchmark BENCHMARK --weights W --root R [--fold F] [--eval.generalised]``."""
    if args and args[0] in SUITES:  # a whole suite: trainingfree | crossdataset
        return cmd_suite(args)
    help_only = bool({"-h", "--help"} & set(args))
    if (not args or args[0].startswith("-")) and not help_only:
        raise ConfigError(
            "usage: lseg-nb benchmark BENCHMARK --weights W --root R (BENCHMARK: pascal5i, coco20i, fss1000 or "
            "ade20k150; or a suite: trainingfree, crossdataset)"
        )
    first, rest = (args[0], args[1:]) if args and not args[0].startswith("-") else ("pascal5i", args)
    name = registry.benchmark_name(first)
    dense = name == "ade20k150"
    # the benchmark's own protocol is the default of the --eval.* flags
    default = BenchmarkArgs(name, eval=OFFICIAL_EVAL if dense else EvalConfig(protocol="episodic"))
    a = parse_args(BenchmarkArgs, rest, f"lseg-nb benchmark {name}", default)
    if not a.weights or not a.root:
        raise ConfigError("lseg-nb benchmark needs --weights W and --root R (the benchmark folder)")
    protocol = a.eval
    if dense == (protocol.protocol == "episodic"):
        raise ConfigError(
            f"{name} is scored with the {'dense' if dense else 'episodic'} protocol: fix --eval.protocol"
        )
    suffix = "" if dense else f"_fold{a.fold}"
    default = Path("runs", "benchmark", safe_name(a.weights), f"{name}{suffix}_{protocol.key}.json")
    out = check_output_path(a.out or default, "--out")
    data = DataConfig(
        dataset=name, data_root=a.root, fold=None if dense else a.fold, max_images=a.max_episodes
    )
    identity = {**_identity(data, "validation" if dense else "val", protocol), "seed": a.seed}
    check_result_file(out, identity, a.overwrite)
    source: EpisodeSource | None = None
    if not dense:  # data errors before the model loads
        source = registry.episode_source(name, a.root, a.fold, a.splits, a.seed, None, a.labels_file)
    model = runs.load_model(a.weights, map_location=str(device.resolve_device("auto")))
    if source is not None:
        result = episodic.run_episodes(model, source, protocol, a.max_episodes)
    else:
        result = evaluation.evaluate(model, data, protocol, split="validation")
    _emit(result, out, identity, a.json)
