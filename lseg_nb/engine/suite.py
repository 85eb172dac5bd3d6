"""Run a whole open-vocabulary suite (``trainingfree``: the eight benchmarks of the SCLIP/NACLIP/ClearCLIP
harnesses; ``crossdataset``: CAT-Seg's six test sets) with every dataset's settings written down.

The suites and the per-dataset settings are data (:mod:`lseg_nb.config.suites`); this module only turns them into
one :class:`~lseg_nb.config.EvalConfig` per dataset (:func:`suite_protocol`), runs the one evaluation path
(:func:`lseg_nb.engine.evaluate.evaluate`) on each, and collects a :class:`SuiteResult` whose row follows the
column order of the papers' tables, plus the average over the datasets.

Why the window is special: the reference harnesses slide windows of their own size (SCLIP/NACLIP 224, ClearCLIP
448 and 224 on Cityscapes, ``ProtocolSettings.crop_size``), while lseg_nb's window is the model's
``config.crop_size``. For the training-free family (a :class:`~lseg_nb.models.dense_clip.DenseCLIP`, whose
position embeddings are resized to any input) the run uses the reference window; a trained LSeg keeps the window
it was trained with, and the row's notes say so. Cross-dataset rows use the LSeg-style protocol of
:data:`CROSSDATASET_EVAL` (short side 640 as detectron2's test mapper, sliding windows of the model, argmax):
CAT-Seg's own global-view scheme (``config.suites.CATSEG_PROTOCOL``) has no ``EvalConfig`` equivalent, so those
numbers are lseg_nb's protocol on CAT-Seg's data and class lists, and the protocol line says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lseg_nb.config import DataConfig, EvalConfig, to_dict
from lseg_nb.config.suites import HARNESSES, SUITES, Benchmark, Suite, average, get_settings
from lseg_nb.data.experiment import Experiment, make_experiment
from lseg_nb.engine.evaluate import eval_data, evaluate
from lseg_nb.engine.results import EvalResult
from lseg_nb.models.dense_clip import DenseCLIP
from lseg_nb.utils.errors import InputError, UnknownNameError

#: The cross-dataset protocol (lseg_nb's; see the module docstring): detectron2's ResizeShortestEdge(640, max
#: 2560) of cvlab-kaist/CAT-Seg@6d3a188 configs/config.yaml:52-53, then windows of the model at stride 2/3.
CROSSDATASET_EVAL = EvalConfig(
    protocol="dense", mode="sliding", short_side=640, long_cap=2560, input_fit="crop"
)

#: lseg_nb's dataset (manifest) name of each suite benchmark: ``data_manifests/benchmarks/<name>.yaml``.
DATASETS: Mapping[tuple[str, str], str] = {
    **{("trainingfree", b): f"sclip_{b}" for b in SUITES["trainingfree"].datasets if b != "ade20k150"},
    ("trainingfree", "ade20k150"): "sclip_ade20k",
    ("crossdataset", "ade20k847"): "catseg_ade847",
    ("crossdataset", "context459"): "catseg_pc459",
    ("crossdataset", "ade20k150"): "catseg_ade150",
    ("crossdataset", "context59"): "catseg_pc59",
    ("crossdataset", "voc20"): "catseg_voc20",
    ("crossdataset", "voc20b"): "catseg_voc20b",
}


@dataclass(frozen=True)
class SuiteConfig:
    """What to run: ``suite`` (trainingfree | crossdataset), the ``root`` holding the prepared datasets (each
    found in its usual sub-folder, ``lseg-nb prepare NAME --root R`` checks one), the reference ``harness`` whose
    per-dataset settings apply (training-free only), ``only`` some datasets, the first ``max_images`` of each
    (quick runs: the numbers are then not the benchmark's), and ``eval`` fields set on top of every dataset's
    settings (e.g. ``{"amp": "bf16"}``; changing a setting makes the row not the reference's, and says so)."""

    suite: str = "trainingfree"
    root: str = ""
    harness: str = "sclip"
    only: tuple[str, ...] = ()
    max_images: int | None = None
    eval: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise UnknownNameError(f"unknown suite {self.suite!r}: one of {list(SUITES)}")
        if self.harness not in HARNESSES:
            raise UnknownNameError(f"unknown harness {self.harness!r}: one of {list(HARNESSES)}")
        suite = SUITES[self.suite]
        unknown = [d for d in self.only if d not in suite.datasets]
        if unknown:
            raise UnknownNameError(
                f"{unknown} not in the {self.suite} suite: --only takes some of {list(suite.datasets)}"
            )
        names = {f.name for f in dataclasses.fields(EvalConfig)}
        bad = sorted(set(self.eval) - names)
        if bad:
            raise InputError(f"{bad} are not EvalConfig fields (see lseg-nb evaluate --help, --eval.*)")
        if self.max_images is not None and self.max_images < 1:
            raise InputError(f"max_images must be >= 1 (or None for every image), got {self.max_images}")

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets to run, in the suite's column order."""
        order = SUITES[self.suite].datasets
        return tuple(d for d in order if not self.only or d in self.only)


@dataclass(frozen=True, eq=False)
class SuiteRow:
    """One dataset of a suite run: ``miou`` (fraction, all labels), the protocol it ran with and its window,
    the reference's window, the full :class:`EvalResult`, and notes (where the run differs from the reference)."""

    benchmark: Benchmark
    dataset: str
    protocol: EvalConfig
    window: int
    reference_window: int | None
    result: EvalResult
    notes: tuple[str, ...] = ()

    @property
    def miou(self) -> float:
        return self.result.all_labels.miou


@dataclass(frozen=True, eq=False)
class SuiteResult:
    """A suite run: its config, the model's description and one :class:`SuiteRow` per dataset run (column
    order). ``average``: the papers' Avg column, only when every dataset of the suite ran (else ``None``)."""

    config: SuiteConfig
    model: str
    rows: tuple[SuiteRow, ...]

    @property
    def suite(self) -> Suite:
        return SUITES[self.config.suite]

    @property
    def miou(self) -> dict[str, float]:
        return {r.benchmark.name: r.miou for r in self.rows}

    @property
    def average(self) -> float | None:
        if {r.benchmark.name for r in self.rows} != set(self.suite.datasets):
            return None
        return average(self.miou, self.suite.datasets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: every dataset's protocol (all fields and its one-line description), window,
        notes, mIoU, and its full result."""
        return {
            "suite": self.config.suite,
            "harness": self.config.harness if self.config.suite == "trainingfree" else None,
            "config": to_dict(self.config),
            "model": self.model,
            "columns": [r.benchmark.column for r in self.rows],
            "miou": self.miou,
            "average": self.average,
            "rows": [
                {
                    "dataset": r.benchmark.name,
                    "manifest": r.dataset,
                    "column": r.benchmark.column,
                    "miou": r.miou,
                    "protocol": r.result.protocol_name,
                    "protocol_config": to_dict(r.protocol),
                    "window": r.window,
                    "reference_window": r.reference_window,
                    "notes": list(r.notes),
                    "result": r.result.to_dict(),
                }
                for r in self.rows
            ],
        }


def suite_protocol(config: SuiteConfig, benchmark: str) -> tuple[EvalConfig, int | None, tuple[str, ...]]:
    """The protocol of one dataset of ``config``'s suite, the reference's window (``None``: not fixed) and the
    notes on what differs from the reference settings."""
    notes: list[str] = []
    if config.suite == "trainingfree":
        settings = get_settings(benchmark, config.harness)
        protocol = EvalConfig(**settings.eval_fields(), input_fit="crop")
        window: int | None = settings.crop_size
        notes.extend([settings.notes] if settings.notes else [])
    else:
        protocol, window = CROSSDATASET_EVAL, None
        notes.append(
            "lseg_nb's sliding protocol on CAT-Seg's data and class lists; CAT-Seg's own inference (640x640 "
            "views + a global view, sigmoid) is not reproduced"
        )
    if config.eval:
        changed = {k: v for k, v in config.eval.items() if getattr(protocol, k) != v}
        protocol = dataclasses.replace(protocol, **config.eval)
        if changed:  # a changed setting makes the row not the reference's: say so in both suites
            whose = (
                f"the {config.harness} settings" if config.suite == "trainingfree" else "the suite's protocol"
            )
            notes.append(f"changed from {whose}: {changed}")
    return protocol, window, tuple(notes)


def test_split(exp: Experiment) -> str:
    """The split a suite scores: the benchmark's validation split (the references test on it)."""
    names = list(getattr(exp.manifest, "split_names", None) or exp.benchmark.splits)  # type: ignore[union-attr]
    for name in ("val", "validation", "test"):
        if name in names:
            return name
    if len(names) == 1:
        return names[0]
    raise InputError(f"{exp.manifest.name}: no val/validation split among {names}")


@contextmanager
def _window(model: nn.Module, window: int | None) -> Iterator[int]:
    """Use the reference window on a training-free model (module docstring); yields the window used."""
    own = int(model.config.crop_size)
    if window is None or window == own or not isinstance(model, DenseCLIP):
        yield own
        return
    config = model.config
    model.config = dataclasses.replace(config, crop_size=window)
    try:
        yield window
    finally:
        model.config = config


def run_suite(
    model: nn.Module,
    config: SuiteConfig,
    model_name: str = "",
    progress: bool = True,
    on_row: Callable[[SuiteRow], None] | None = None,
) -> SuiteResult:
    """Run ``config``'s suite on ``model``, dataset by dataset, in the papers' column order.

    Args:
        model: any lseg_nb model (``lseg_nb.load_model``: run folder, converted checkpoint, training-free spec).
        config: the suite, data root, harness, datasets and overrides.
        model_name: how the model is named in the result (its weights or spec).
        progress: show progress bars.
        on_row: called with each finished row (e.g. to print it as it comes).

    Every dataset's data is checked before any is scored, so a missing dataset fails in seconds, not after
    hours of the others.
    """
    plan = []
    for name in config.datasets:
        dataset = DATASETS[(config.suite, name)]
        data = DataConfig(dataset=dataset, data_root=config.root, fold=None, max_images=config.max_images)
        plan.append((SUITES[config.suite].benchmark(name), data))
    experiments = [make_experiment(data) for _, data in plan]  # raises on a missing/incomplete dataset
    rows = []
    for (bench, data), exp in zip(plan, experiments, strict=True):
        protocol, reference, notes = suite_protocol(config, bench.name)
        with _window(model, reference) as window:
            if reference is not None and window != reference:
                notes = (*notes, f"window {window} (the model's own); the reference uses {reference}")
            split = test_split(exp)
            result = evaluate(model, eval_data(data, split, model, exp=exp), protocol, progress=progress)
        if config.max_images:
            notes = (*notes, f"first {config.max_images} images only: not the benchmark's number")
        row = SuiteRow(bench, data.dataset, protocol, window, reference, result, notes)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return SuiteResult(config, model_name, tuple(rows))
