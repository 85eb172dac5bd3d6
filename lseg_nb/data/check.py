"""Check a dataset described by a manifest before training on it (``lseg-nb check``, ``train --dry-run``).

A first day with one's own data fails in the data far more often than in the model: a label exported as a colour
image, a class value the manifest does not list, an image and its label of different sizes, an id in two splits,
a fold whose held-out classes never occur in the evaluation split. Training finds these one at a time, minutes in;
:func:`check_data` reads every image and label of every split once and reports all of them together.

Two kinds of findings: a *problem* stops training (a missing or unreadable file, a size mismatch, a value that is
neither a class nor ``ignore_index``, a missing split); a *note* is legal data that is probably not what was meant
(ids shared by splits, classes that never occur, unseen fold classes absent from an evaluation split, labels that
are all void). Each names the file or the split and the fix. Problems are collected up to a limit, so a dataset
exported wrongly as a whole gives a short list rather than thousands of lines.

The result also summarises each split (images, classes present, void share, image size range), which
:mod:`lseg_nb.apps.cli_check` prints as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lseg_nb.config import DataConfig
from lseg_nb.data.benchmarks.training import is_benchmark
from lseg_nb.data.datasets import SegmentationDataset
from lseg_nb.data.experiment import dataset_root, label_split
from lseg_nb.data.manifests import DatasetManifest, load_manifest
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

#: problems listed before the rest are only counted
MAX_PROBLEMS = 20
#: splits whose scores are reported: an unseen fold class absent from them has no zero-shot score
EVAL_ROLES = ("val_split", "test_split")


@dataclass(frozen=True)
class SplitSummary:
    """What one split holds: images checked, class pixel counts, void share and image size range."""

    name: str
    images: int
    class_pixels: tuple[int, ...]
    void_share: float
    min_size: tuple[int, int] | None
    max_size: tuple[int, int] | None
    #: ids whose label is void everywhere
    all_void: tuple[str, ...] = ()

    def present(self) -> tuple[int, ...]:
        """Indices of the classes with at least one pixel in the split."""
        return tuple(i for i, n in enumerate(self.class_pixels) if n)


@dataclass(frozen=True)
class DataCheck:
    """The outcome of :func:`check_data`: per-split summaries, problems (stop training) and notes (look)."""

    dataset: str
    root: Path
    labels: LabelSplit
    fold: int | str | None
    splits: tuple[SplitSummary, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: problems found beyond :data:`MAX_PROBLEMS` (counted, not listed)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        """Whether training can run on the data (notes allowed)."""
        return not self.problems


@dataclass
class _Collector:
    limit: int
    problems: list[str] = field(default_factory=list)
    more: int = 0

    def add(self, message: str) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(message)
        else:
            self.more += 1


def check_data(cfg: DataConfig, max_problems: int = MAX_PROBLEMS) -> DataCheck:
    """Read every image and label of every split of ``cfg``'s manifest dataset and report what is wrong.

    A manifest or fold that cannot be used at all (unknown fold name, classes file missing) raises its own error;
    problems with single files and splits are collected in the result. ``cfg.max_images`` caps each split, as
    in training.

    Args:
        cfg: the data config (dataset manifest, data root, fold, split roles, max_images).
        max_problems: how many problems to list before only counting the rest.
    """
    if is_benchmark(cfg.dataset):
        raise InputError(
            f"{cfg.dataset} is a paper benchmark: check its local copy with `lseg-nb prepare {cfg.dataset} "
            "--root PATH`; `lseg-nb check` reads datasets described by a manifest"
        )
    manifest = load_manifest(cfg.dataset)
    root = dataset_root(cfg, manifest)
    labels = label_split(manifest, root, cfg.fold)
    found = _Collector(max_problems)
    summaries, ids = [], {}
    for spec in manifest.splits:
        try:
            manifest.verify_split(root, spec.name)
            ds = SegmentationDataset(root, manifest, spec.name, max_images=cfg.max_images)
        except (InputError, FileNotFoundError) as e:
            found.add(f"split {spec.name!r}: {e}")
            continue
        ids[spec.name] = ds.ids
        summaries.append(_check_split(ds, found))
    notes = _roles(cfg, manifest, found) + _notes(cfg, labels, summaries, ids)
    return DataCheck(
        manifest.name,
        root,
        labels,
        cfg.fold,
        tuple(summaries),
        tuple(found.problems),
        tuple(notes),
        found.more,
    )


def _check_split(ds: SegmentationDataset, found: _Collector) -> SplitSummary:
    """Read each item of ``ds``: problems go to ``found``; the pixel counts of the readable items are summed."""
    counts = np.zeros(ds.num_classes, dtype=np.int64)
    void = total = 0
    sizes: list[tuple[int, int]] = []
    all_void: list[str] = []
    for i in range(len(ds)):
        try:
            image, label = ds.raw_image(i), ds.raw_label(i)
        except (InputError, FileNotFoundError) as e:
            found.add(str(e))
            continue
        if (image.height, image.width) != label.shape:
            found.add(
                f"{ds.label_path(i)} is {label.shape[0]}x{label.shape[1]} but its image {ds.image_path(i)} is "
                f"{image.height}x{image.width}: a label must have its image's size (re-export it, or resize it "
                "with nearest-neighbour sampling)"
            )
            continue
        sizes.append(label.shape)
        is_void = label == ds.ignore_index
        counts += np.bincount(label[~is_void].ravel(), minlength=ds.num_classes)[: ds.num_classes]
        void += int(is_void.sum())
        total += label.size
        if is_void.all():
            all_void.append(ds.ids[i])
    return SplitSummary(
        ds.split,
        len(sizes),
        tuple(int(c) for c in counts),
        void / total if total else 0.0,
        (min(h for h, _ in sizes), min(w for _, w in sizes)) if sizes else None,
        (max(h for h, _ in sizes), max(w for _, w in sizes)) if sizes else None,
        tuple(all_void),
    )


def _roles(cfg: DataConfig, manifest: DatasetManifest, found: _Collector) -> list[str]:
    """The config's train split must exist (a problem); a missing val/test split is a note."""
    notes = []
    names = manifest.split_names
    if cfg.train_split not in names:
        found.add(
            f"data.train_split {cfg.train_split!r} is not a split of {manifest.name} (splits: {names}); add it to "
            "the manifest's splits or pass --data.train-split NAME"
        )
    for role in EVAL_ROLES:
        split = getattr(cfg, role)
        if split not in names:
            notes.append(
                f"data.{role} {split!r} is not a split of {manifest.name} (splits: {names}): evaluating it fails; "
                f"pass --data.{role.replace('_', '-')} NAME"
            )
    return notes


def _notes(
    cfg: DataConfig, labels: LabelSplit, summaries: list[SplitSummary], ids: dict[str, list[str]]
) -> list[str]:
    notes = []
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(ids[a]) & set(ids[b]))
            if shared:
                notes.append(
                    f"splits {a!r} and {b!r} share {len(shared)} id(s), e.g. {shared[0]!r}: a split that is "
                    "scored should not contain training images; remove them from one split file"
                )
    for s in summaries:
        if s.all_void:
            notes.append(
                f"split {s.name!r}: {len(s.all_void)} label(s) are void everywhere, e.g. id {s.all_void[0]!r}: an "
                "unlabelled image teaches and scores nothing; label it or remove its id from the split file"
            )
    by_name = {s.name: s for s in summaries}
    seen_any = {c for s in summaries for c in s.present()}
    absent = [labels.class_names[c] for c in range(labels.num_classes) if c not in seen_any]
    if summaries and absent:
        notes.append(
            f"class(es) {absent} have no pixel in any split: they can be neither learned nor scored; check the "
            "label values against the class order, or drop them from the classes"
        )
    train = by_name.get(cfg.train_split)
    if train is not None and cfg.fold is not None:
        missing = [labels.class_names[c] for c in labels.seen if not train.class_pixels[c]]
        if missing:
            notes.append(f"fold {cfg.fold!r}: seen class(es) {missing} have no pixel in {cfg.train_split!r}")
    for role in EVAL_ROLES:
        split = by_name.get(getattr(cfg, role))
        if split is None or cfg.fold is None:
            continue
        missing = [labels.class_names[c] for c in labels.unseen if not split.class_pixels[c]]
        if missing:
            notes.append(
                f"fold {cfg.fold!r}: unseen class(es) {missing} have no pixel in split {split.name!r}, so their "
                "zero-shot IoU is undefined there; choose a fold whose held-out classes occur in it"
            )
    return notes
