"""``lseg-nb check DATA``: validate a dataset manifest and its data, and print a summary table; also the data
check of ``lseg-nb train --dry-run``.

The checking is :func:`lseg_nb.data.check.check_data`; this module only prints it. The table has one row per
split (images read, classes present out of all, void share, image size range and, with a fold, how many of the
fold's unseen classes occur); below it come the notes (legal but suspicious data) and the problems (training
would fail), one per line. Any problem ends the command with exit code 2, notes alone do not, so a script can
run ``lseg-nb check`` before a long training job.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TextIO

import tyro

from lseg_nb.apps.cli_args import parse_args
from lseg_nb.config import DataConfig
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.lazy import lazy_module

if TYPE_CHECKING:
    from lseg_nb.data.check import DataCheck, SplitSummary

# the data layer imports torch (datasets, benchmarks): loaded when a check runs, so `check --help` starts fast
data_check = lazy_module("lseg_nb.data.check")
training = lazy_module("lseg_nb.data.benchmarks.training")
MAX_PROBLEMS = 20  # problems listed before the check stops reading (data.check.MAX_PROBLEMS, the same number)


@dataclass(frozen=True)
class CheckArgs:
    """Check a dataset before training on it: every split's images and labels are read once."""

    dataset: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="DATA")]
    """manifest name (msrc_v2) or path to a manifest YAML file"""
    data_root: str | None = None
    """the dataset folder (default: as training finds it; docs/data.md)"""
    fold: int | str | None = None
    """zero-shot fold (index or name) whose unseen classes must occur in the evaluation splits"""
    max_images: int | None = None
    """read only the first N ids of each split (a quick look at a large dataset)"""
    max_problems: int = MAX_PROBLEMS
    """problems listed before the rest are only counted"""


def _size(s: SplitSummary) -> str:
    """``96x128`` when every image has that size, else each side's range (``H 162..320, W 213..320``): the
    smallest height and width may come from different images (portrait and landscape photographs)."""
    if s.min_size is None or s.max_size is None:
        return "-"
    if s.min_size == s.max_size:
        return f"{s.min_size[0]}x{s.min_size[1]}"
    h, w = ((str(a) if a == b else f"{a}..{b}") for a, b in zip(s.min_size, s.max_size))
    return f"H {h}, W {w}"


def summary_table(check: DataCheck) -> str:
    """The per-split table of a check: split, images, classes present, void %, image sizes [, unseen present].

    Args:
        check: the result of :func:`~lseg_nb.data.check.check_data`.
    """
    labels = check.labels
    header = ["split", "images", "classes present", "void %", "image size"]
    if check.fold is not None:
        header.append(f"unseen of fold {check.fold!r} present")
    rows = [header]
    for s in check.splits:
        present = s.present()
        row = [
            s.name,
            str(s.images),
            f"{len(present)}/{labels.num_classes}",
            f"{100 * s.void_share:.1f}",
            _size(s),
        ]
        if check.fold is not None:
            row.append(f"{sum(c in present for c in labels.unseen)}/{len(labels.unseen)}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    )


def print_check(check: DataCheck, file: TextIO | None = None) -> None:
    """Print a check: a title line, the table, then notes and problems one per line.

    Args:
        check: the result of :func:`~lseg_nb.data.check.check_data`.
        file: where to print (default stdout; stderr under ``train --dry-run``, whose stdout is the config JSON).
    """
    file = file or sys.stdout
    labels = check.labels
    fold = f"; fold {check.fold!r} holds out {list(labels.unseen_names)}" if check.fold is not None else ""
    print(f"dataset {check.dataset} at {check.root}: {labels.num_classes} classes{fold}", file=file)
    print(summary_table(check), file=file)
    for note in check.notes:
        print(f"note: {note}", file=file)
    for problem in check.problems:
        print(f"problem: {problem}", file=file)
    if check.more_problems:
        print(f"problem: ... and {check.more_problems} more", file=file)


def _refuse(check: DataCheck, command: str) -> None:
    if not check.ok:
        n = len(check.problems) + check.more_problems
        raise InputError(
            f"{n} problem(s) in the data of {check.dataset} at {check.root} (listed above): fix them and run "
            f"`{command}` again"
        )


def cmd_check(args: list[str]) -> None:
    """``lseg-nb check DATA [--data-root PATH] [--fold F] [--max-images N]``."""
    a = parse_args(CheckArgs, args, "lseg-nb check")
    cfg = DataConfig(dataset=a.dataset, data_root=a.data_root, fold=a.fold, max_images=a.max_images)
    check = data_check.check_data(cfg, a.max_problems)
    print_check(check)
    _refuse(check, "lseg-nb check " + " ".join(args))


def check_train_data(cfg: DataConfig) -> None:
    """The data check of ``lseg-nb train --dry-run``: the summary on stderr, exit 2 on problems.

    Args:
        cfg: the run's data config (its fold and split roles are checked too).
    """
    if training.is_benchmark(cfg.dataset):
        print(
            f"data: {cfg.dataset} is a paper benchmark; `lseg-nb prepare` checks its local copy",
            file=sys.stderr,
        )
        return
    check = data_check.check_data(cfg)
    print_check(check, sys.stderr)
    _refuse(check, "lseg-nb train ... --dry-run")
