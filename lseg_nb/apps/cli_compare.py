"""``lseg-nb compare A B``: two models scored on the same images with one protocol, and the paired bootstrap of
their difference (:func:`lseg_nb.engine.bootstrap.paired_difference`), so "A beats B on this fold" comes with an
interval and a p-value instead of a bare difference."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import tyro

from lseg_nb.apps.cli_args import parse_args
from lseg_nb.config import ConfigError, DataConfig, EvalConfig, TrainConfig, load_config
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import user_path
from lseg_nb.utils.lazy import lazy_module

if TYPE_CHECKING:
    from lseg_nb.engine.bootstrap import PairedDifference

# imported when the command runs, not for --help (torch alone takes seconds)
bootstrap = lazy_module("lseg_nb.engine.bootstrap")
device = lazy_module("lseg_nb.utils.device")
evaluation = lazy_module("lseg_nb.engine.evaluate")
runs = lazy_module("lseg_nb.engine.runs")


@dataclass(frozen=True)
class CompareArgs:
    """Compare two models on the same images: a metric of each, their difference, its image-level bootstrap
    interval and a two-sided bootstrap p-value. Data and protocol default to the first model's run folder."""

    a: tyro.conf.Positional[str]
    """first model: run folder, .safetensors file or training-free spec"""
    b: tyro.conf.Positional[str]
    """second model, scored on the same images with the same protocol"""
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    split: str = "test"
    setting: Literal["all_labels", "unseen_only", "calibrated"] = "all_labels"
    """which setting's scores to compare (unseen_only / calibrated need a zero-shot fold)"""
    metric: Literal["miou", "pixel_acc", "seen_miou", "unseen_miou", "harmonic_iou"] = "miou"


def _defaults(first: str) -> CompareArgs:
    config = user_path(first) / "config.json"
    if config.is_file():
        saved = load_config(TrainConfig, config)
        return CompareArgs(a=first, b="", data=saved.data, eval=saved.eval)
    return CompareArgs(a=first, b="", data=DataConfig(fold=None))


def compare_models(args: CompareArgs) -> PairedDifference:
    """Score both models and return the paired difference (``args``: see :class:`CompareArgs`)."""
    if args.eval.protocol == "episodic":
        raise ConfigError("compare scores the dense protocol: drop --eval.protocol episodic")
    protocol = args.eval if args.eval.bootstrap else dataclasses.replace(args.eval, bootstrap=1000)
    where = str(device.resolve_device("auto"))
    results = [
        evaluation.evaluate(runs.load_model(w, map_location=where), args.data, protocol, args.split)
        for w in (args.a, args.b)
    ]
    if args.setting not in results[0].settings:
        raise InputError(
            f"setting {args.setting!r} was not scored: {sorted(results[0].settings)} (a fold adds more)"
        )
    sa, sb = (r.settings[args.setting] for r in results)
    if sa.labels != sb.labels:
        raise InputError(
            "the two models were scored with different label sets: compare them on the same data"
        )
    split = sa.labels
    seen, unseen = (split.seen, split.unseen) if split.is_zero_shot else (None, None)
    return bootstrap.paired_difference(
        sa.per_image, sb.per_image, args.metric, seen, unseen, protocol.bootstrap, protocol.bootstrap_seed
    )


def cmd_compare(args: list[str]) -> None:
    """``lseg-nb compare A B [--data.* ...] [--eval.* ...] [--setting S] [--metric M]``."""
    first = next((x for x in args if not x.startswith("-")), None)
    default = _defaults(first) if first else None
    a = parse_args(CompareArgs, args, "lseg-nb compare", default)
    d = compare_models(a)
    print(
        f"A = {a.a}\nB = {a.b}\n{a.data.dataset} {a.split}, setting {a.setting}, protocol {a.eval.describe()}"
    )
    print(d.line().replace(f"{d.metric}: ", f"{d.metric} (A vs B): ", 1))
