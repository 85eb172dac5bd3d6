"""``lseg-nb benchmark trainingfree|crossdataset``: a whole open-vocabulary suite in one command.

One row in the column order of the papers' tables (plus the average), the published rows of the suite beneath
it (marked published, not reproduced here), each dataset's protocol line, and a JSON file with every setting.
The per-dataset settings are the reference harness's (:mod:`lseg_nb.config.suites`); ``--eval.*`` flags change a
field for every dataset and the notes say so.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tyro

from lseg_nb.apps.cli_args import check_result_file, parse_args, safe_name
from lseg_nb.config import ConfigError, EvalConfig
from lseg_nb.config.suites import SUITES
from lseg_nb.utils.io import atomic_write_text, check_output_path
from lseg_nb.utils.lazy import lazy_module

if TYPE_CHECKING:
    from lseg_nb.engine.suite import SuiteRow

# imported when the command runs, not for --help (torch alone takes seconds)
device = lazy_module("lseg_nb.utils.device")
reports = lazy_module("lseg_nb.apps.reports")
runs = lazy_module("lseg_nb.engine.runs")
engine_suite = lazy_module("lseg_nb.engine.suite")


@dataclass(frozen=True)
class SuiteArgs:
    """Run an open-vocabulary suite: trainingfree (VOC21, PC60, Object, VOC20, PC59, Stuff, City, ADE with the
    SCLIP / NACLIP / ClearCLIP settings) or crossdataset (A-847, PC-459, A-150, PC-59, PAS-20, PAS-20b)."""

    suite: tyro.conf.Suppress[str] = "trainingfree"
    weights: str = ""
    """run folder, .safetensors file (e.g. from `lseg-nb convert`) or a training-free spec (naclip:ViT-B-16/openai)"""
    root: str = ""
    """the folder holding the prepared datasets (mmsegmentation / detectron2 layouts; `lseg-nb prepare NAME`)"""
    harness: str = "sclip"
    """training-free settings to follow: sclip, naclip or clearclip (per dataset: logit scale, thresholds, short
    side, windows, PAMR)"""
    only: tuple[str, ...] = ()
    """run only these datasets (e.g. --only voc21 context60)"""
    max_images: int | None = None
    """first N images of each dataset, for quick runs (the numbers are then not the benchmark's)"""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """--eval.FIELD changes that field for every dataset (e.g. --eval.amp bf16); the notes record it"""
    out: str | None = None
    """JSON file (default: runs/benchmark/WEIGHTS/SUITE_HARNESS.json, with the --only datasets and --max-images in the name)"""
    overwrite: bool = False
    """replace an existing result file that holds a different run"""
    json: bool = False
    """print the result as JSON instead of the table"""


def _eval_overrides(args: list[str], protocol: EvalConfig) -> dict:
    """The EvalConfig fields named by ``--eval.*`` flags (only those: the others keep each dataset's settings)."""
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    given = set()
    for token in args:
        if token.startswith("--eval."):
            given.add(token[len("--eval.") :].split("=", 1)[0].replace("-", "_"))
    return {k: getattr(protocol, k) for k in sorted(given & names)}


def default_out(a: SuiteArgs) -> Path:
    harness = f"_{a.harness}" if a.suite == "trainingfree" else ""
    only = "_" + "-".join(a.only) if a.only else ""
    first = f"_first{a.max_images}" if a.max_images else ""
    return Path("runs", "benchmark", safe_name(a.weights), f"{a.suite}{harness}{only}{first}.json")


def cmd_suite(args: list[str]) -> None:
    """``lseg-nb benchmark SUITE --weights W --root R [--harness H] [--only D ...] [--eval.* ...]``."""
    suite, rest = args[0], list(args[1:])
    a = parse_args(SuiteArgs, rest, f"lseg-nb benchmark {suite}", SuiteArgs(suite))
    if not a.weights or not a.root:
        raise ConfigError(f"lseg-nb benchmark {suite} needs --weights W and --root R (the datasets' folder)")
    config = engine_suite.SuiteConfig(
        a.suite, a.root, a.harness, tuple(a.only), a.max_images, _eval_overrides(rest, a.eval)
    )
    out = check_output_path(a.out or default_out(a), "--out")
    # through JSON so that it compares equal to the identity read back from an existing file
    identity = json.loads(json.dumps({"weights": a.weights, "suite": dataclasses.asdict(config)}))
    check_result_file(out, identity, a.overwrite)
    model = runs.load_model(a.weights, map_location=str(device.resolve_device("auto")))

    def show(row: SuiteRow) -> None:
        if not a.json:
            print(
                f"{row.benchmark.column}: mIoU {100 * row.miou:.1f} ({row.result.protocol_name})", flush=True
            )

    result = engine_suite.run_suite(model, config, a.weights, progress=not a.json, on_row=show)
    text = json.dumps({"identity": identity, **result.to_dict()}, indent=2, allow_nan=False)
    atomic_write_text(out, text + "\n")
    if a.json:
        print(text)
        return
    print()
    print(reports.suite_table(result))
    print(f"results (every setting, per-class IoU) written to {out}")


def is_suite(name: str) -> bool:
    """Whether ``lseg-nb benchmark NAME`` names a suite rather than one benchmark."""
    return name in SUITES
