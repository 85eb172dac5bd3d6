"""``lseg-nb benchmark`` (score any weights on a paper benchmark with its protocol) and the episodic branch of
``lseg-nb evaluate --run``: a readable table on stdout (or JSON with ``--json``) and a JSON file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import tyro

from lseg_nb.apps.cli_args import parse_args
from lseg_nb.apps.pipeline import benchmark_model, evaluate_benchmark_run
from lseg_nb.apps.reports import benchmark_table, evaluation_table
from lseg_nb.config import DataConfig
from lseg_nb.data.benchmarks.registry import benchmark_name
from lseg_nb.utils.io import atomic_write_text, check_output_path
from lseg_nb.utils.parsing import json_safe


@dataclass(frozen=True)
class BenchmarkArgs:
    """Score weights on a paper benchmark with its protocol: the episodic zero-shot one (pascal5i, coco20i,
    fss1000) or the official multi-scale one (ade20k150, validation split)."""

    benchmark: tyro.conf.Positional[str]
    """pascal5i, coco20i, fss1000 or ade20k150 (or the official names pascal, coco, fss, ade20k)"""
    weights: str
    """run folder, .safetensors file (e.g. from `lseg-nb convert`) or a training-free spec (maskclip:...)"""
    root: str
    """the benchmark folder checked by `lseg-nb prepare`"""
    fold: int = 0
    splits: str | None = None
    """HSNet's data/splits folder (PASCAL-5i val lists; COCO-20i val/fold<f>.pkl)"""
    generalised: bool = False
    """also score the generalised setting (several labels at once; not reported in the paper)"""
    image_size: int = 480
    """episode size (official: 480)"""
    max_episodes: int | None = None
    """first N episodes (ade20k150: images) for quick runs; the number is then not the paper's"""
    seed: int = 0
    """COCO-20i episode seed (0 = the official test's)"""
    labels_file: str | None = None
    """label texts, one per line (default: the paper's)"""
    out: str | None = None
    """JSON file (default runs/benchmark/WEIGHTS/BENCHMARK_foldF.json)"""
    json: bool = False
    """print the result as JSON instead of a table"""


def evaluate_episodic_run(
    run: Path, data: DataConfig, max_episodes: int | None, out: str | None, as_json: bool
) -> None:
    """``lseg-nb evaluate --run RUN`` of a run whose recipe uses the episodic protocol."""
    path = check_output_path(out or run / "eval_episodic.json", "--out")
    _emit(json_safe(evaluate_benchmark_run(run, data, max_episodes)), path, as_json)


def _emit(result: dict, out: Path, as_json: bool) -> None:
    text = json.dumps(result, indent=2, allow_nan=False)
    atomic_write_text(out, text + "\n")
    print(text if as_json else benchmark_table(result))
    if not as_json:
        print(f"metrics written to {out}")


def cmd_benchmark(args: list[str]) -> None:
    """``lseg-nb benchmark BENCHMARK --weights W --root R [--fold F] [--generalised]``."""
    a = parse_args(BenchmarkArgs, args, "lseg-nb benchmark")
    name = benchmark_name(a.benchmark)
    weights = re.sub(r"[^A-Za-z0-9._-]+", "_", a.weights).strip("_")
    suffix = "" if name == "ade20k150" else f"_fold{a.fold}"
    out = check_output_path(a.out or Path("runs", "benchmark", weights, f"{name}{suffix}.json"), "--out")
    result = benchmark_model(
        name,
        a.weights,
        a.root,
        a.fold,
        a.splits,
        a.generalised,
        a.image_size,
        a.max_episodes,
        a.seed,
        a.labels_file,
    )
    if isinstance(result, dict):
        _emit(json_safe(result), out, a.json)
        return
    result.save_json(out)
    table = evaluation_table(result, name, "validation")
    print(json.dumps(result.to_dict(), indent=2, allow_nan=False) if a.json else table)
    if not a.json:
        print(f"metrics written to {out}")
