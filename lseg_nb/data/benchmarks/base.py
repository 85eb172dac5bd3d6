"""Shared pieces of the paper's benchmarks: benchmark manifests, episodes, errors and query loading.

A benchmark manifest (``data_manifests/benchmarks/<name>.yaml``) is plain data: source URLs, the on-disk layout,
the label texts exactly as the official label file, the zero-shot folds (unseen class names) and the sha256 of the
published split lists. Class ids are 1-based positions in ``classes`` (0 is "others" / background in masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lseg_nb.data.images import read_rgb
from lseg_nb.data.manifests import MANIFEST_DIR, ManifestError, file_sha256, read_class_lines, read_plain_yaml
from lseg_nb.data.transforms import normalize_image
from lseg_nb.utils.errors import InputError, UserError
from lseg_nb.utils.io import user_path
from lseg_nb.utils.labels import LabelSplit

BENCHMARK_MANIFEST_DIR = MANIFEST_DIR / "benchmarks"
IGNORE = 255
OTHERS = "others"  # the background label text of the official zero-shot code


class MissingDataError(UserError, FileNotFoundError):
    """A benchmark file or folder is missing; the message names it, what was expected and where to get it."""


def missing(what: str, path: Path, expected: str, source: str) -> MissingDataError:
    """Build the one error format used for missing benchmark data."""
    return MissingDataError(
        f"{what} not found: {path} does not exist. Expected {expected}. Get it from {source}"
    )


@dataclass(frozen=True)
class Episode:
    """One zero-shot query: an image id (benchmark-specific) and a 1-based class id of the label file."""

    image_id: str
    class_id: int


@dataclass(frozen=True)
class SplitList:
    """A published split list: its path relative to the split folder, sha256 and number of non-empty lines."""

    relpath: str
    sha256: str
    lines: int


@dataclass(frozen=True)
class BenchmarkManifest:
    """A validated benchmark manifest (see ``data_manifests/benchmarks/*.yaml``)."""

    name: str
    title: str
    protocol: str
    description: str
    licence: str
    sources: dict[str, str]
    layout: str
    label_file: str
    label_file_sha256: str
    classes: tuple[str, ...]
    folds: tuple[tuple[str, tuple[str, ...]], ...] = ()
    split_lists: tuple[SplitList, ...] = ()
    episodes_per_fold: int | None = None
    image_size: int = 480
    category_ids: tuple[int, ...] = ()
    path: Path | None = None

    def fold_class_ids(self, fold: int) -> list[int]:
        """1-based class ids held out (unseen) in ``fold``, in class-id order."""
        if not 0 <= fold < len(self.folds):
            raise InputError(
                f"{self.name}: fold must be 0..{len(self.folds) - 1} ({[f[0] for f in self.folds]}), got {fold}"
            )
        unseen = set(self.folds[fold][1])
        return [i + 1 for i, n in enumerate(self.classes) if n in unseen]

    def split_list(self, relpath: str) -> SplitList:
        """The published split list ``relpath`` (e.g. ``pascal/val/fold0.txt``)."""
        for s in self.split_lists:
            if s.relpath == relpath:
                return s
        raise ManifestError(
            f"{self.name}: no split list {relpath!r}; known: {[s.relpath for s in self.split_lists]}"
        )


_FIELDS_REQUIRED = set("name title protocol description licence sources layout label_file classes".split())
_FIELDS_OPTIONAL = {"folds", "split_lists", "episodes", "category_ids"}


def _req(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {msg}")


def _str_map(value: Any, where: str) -> dict[str, str]:
    _req(isinstance(value, dict) and value, where, f"expected a non-empty mapping of strings, got {value!r}")
    for k, v in value.items():
        _req(
            isinstance(k, str) and isinstance(v, str) and v.strip(),
            f"{where}.{k}",
            f"expected a string, got {v!r}",
        )
    return dict(value)


def parse_benchmark_manifest(data: Any, path: Path) -> BenchmarkManifest:
    """Validate parsed YAML ``data`` of a benchmark manifest; errors name the file and the field."""
    f = path.name
    _req(isinstance(data, dict), f, f"expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS_REQUIRED - _FIELDS_OPTIONAL)
    _req(not unknown, f, f"unknown field(s) {unknown}; valid: {sorted(_FIELDS_REQUIRED | _FIELDS_OPTIONAL)}")
    absent = sorted(_FIELDS_REQUIRED - set(data))
    _req(not absent, f, f"missing required field(s) {absent}")
    for key in ("name", "title", "protocol", "description", "licence", "layout"):
        _req(
            isinstance(data[key], str) and data[key].strip(),
            f"{f}: {key}",
            f"expected a string, got {data[key]!r}",
        )
    _req(
        data["protocol"] in ("episodic", "fixed"),
        f"{f}: protocol",
        f"episodic or fixed, got {data['protocol']!r}",
    )
    label = data["label_file"]
    _req(
        isinstance(label, dict) and set(label) == {"name", "sha256"},
        f"{f}: label_file",
        "expected {name, sha256}",
    )
    classes = data["classes"]
    _req(isinstance(classes, list) and classes, f"{f}: classes", "expected a non-empty list of label texts")
    for i, n in enumerate(classes):
        _req(
            isinstance(n, str) and n.strip() == n and n,
            f"{f}: classes[{i}]",
            f"expected a label text, got {n!r}",
        )
    folds = []
    for i, fold in enumerate(data.get("folds") or []):
        w = f"{f}: folds[{i}]"
        _req(isinstance(fold, dict) and set(fold) == {"name", "unseen"}, w, "expected {name, unseen}")
        unseen = fold["unseen"]
        _req(
            isinstance(unseen, list) and unseen and len(set(unseen)) == len(unseen),
            w,
            "unseen: distinct names",
        )
        for n in unseen:
            _req(classes.count(n) == 1, w, f"unseen class {n!r} must occur exactly once in classes")
        _req(len(unseen) < len(classes), w, "holds out every class")
        folds.append((str(fold["name"]), tuple(unseen)))
    splits = []
    for rel, spec in (data.get("split_lists") or {}).items():
        w = f"{f}: split_lists.{rel}"
        _req(isinstance(spec, dict) and set(spec) == {"sha256", "lines"}, w, "expected {sha256, lines}")
        _req(isinstance(spec["sha256"], str) and len(spec["sha256"]) == 64, w, "sha256: 64 hex digits")
        splits.append(SplitList(str(rel), spec["sha256"], int(spec["lines"])))
    episodes = data.get("episodes") or {}
    per_fold = episodes.get("per_fold") if isinstance(episodes, dict) else None
    _req(
        per_fold is None or (isinstance(per_fold, int) and per_fold > 0),
        f"{f}: episodes.per_fold",
        "int or null",
    )
    _req(
        isinstance(episodes, dict) and set(episodes) <= {"per_fold", "image_size"},
        f"{f}: episodes",
        "bad keys",
    )
    category_ids = tuple(int(c) for c in data.get("category_ids") or ())
    _req(not category_ids or len(category_ids) == len(classes), f"{f}: category_ids", "one id per class")
    return BenchmarkManifest(
        name=data["name"],
        title=data["title"],
        protocol=data["protocol"],
        description=data["description"],
        licence=data["licence"],
        sources=_str_map(data["sources"], f"{f}: sources"),
        layout=data["layout"],
        label_file=str(label["name"]),
        label_file_sha256=str(label["sha256"]),
        classes=tuple(classes),
        folds=tuple(folds),
        split_lists=tuple(splits),
        episodes_per_fold=episodes.get("per_fold"),
        image_size=int(episodes.get("image_size", 480)),
        category_ids=category_ids,
        path=path,
    )


@cache
def load_benchmark_manifest(name: str) -> BenchmarkManifest:
    """Load ``data_manifests/benchmarks/<name>.yaml`` (cached; the file is plain data)."""
    path = BENCHMARK_MANIFEST_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in BENCHMARK_MANIFEST_DIR.glob("*.yaml"))
        raise ManifestError(f"no benchmark manifest {name!r} in {BENCHMARK_MANIFEST_DIR}; known: {known}")
    return parse_benchmark_manifest(read_plain_yaml(path), path)


def read_label_file(path: str | Path, manifest: BenchmarkManifest) -> list[str]:
    """Label texts of an official label file (one per line; ADE20K: objectInfo150 table, first synonym).

    The count must match the manifest; the texts may differ (prompt experiments), see :func:`labels_match_paper`.
    """
    path = user_path(path)
    if not path.is_file():
        raise missing(
            "label file",
            path,
            f"{manifest.label_file} (one label text per line)",
            manifest.sources["label_file"],
        )
    rows = read_class_lines(path)  # a blank or repeated line is refused naming it
    if manifest.label_file.endswith("objectInfo150.txt"):
        # the official reader: last comma field, first ';' synonym, header row dropped
        rows = [r.split(",")[-1].split(";")[0] for r in rows[1:]]
    if len(rows) != len(manifest.classes):
        raise InputError(
            f"{path} has {len(rows)} label names; {manifest.title} needs {len(manifest.classes)}, one per line "
            f"in class-id order (as {manifest.label_file})"
        )
    return rows


def labels_match_paper(names: Sequence[str], manifest: BenchmarkManifest) -> bool:
    """Whether ``names`` are exactly the label texts the paper used (the manifest's ``classes``)."""
    return tuple(names) == manifest.classes


def check_split_file(path: Path, manifest: BenchmarkManifest, relpath: str) -> str:
    """sha256 of a published split list; raises when it is missing or differs from the manifest."""
    spec = manifest.split_list(relpath)
    if not path.is_file():
        raise missing(
            "split list",
            path,
            f"the published list {relpath} ({spec.lines} lines)",
            manifest.sources["split_lists"],
        )
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise InputError(
            f"{path}: sha256 {actual} differs from the published {relpath} ({spec.sha256}, {spec.lines} lines in "
            f"{manifest.path.name if manifest.path else manifest.name}); restore the original list from "
            f"{manifest.sources['split_lists']}"
        )
    return actual


def others_label_split(manifest: BenchmarkManifest, fold: int) -> LabelSplit:
    """Zero-shot training labels of ``fold``: ``("others", *classes)`` with mask value = index, unseen held out.

    ``LabelSplit.train_lut()`` maps a mask (0 background, ``c`` = class ``c``, 255 void) to positions in the seen
    label list; pixels of unseen classes become ignore, so they are never a training target.
    """
    unseen = tuple(manifest.fold_class_ids(fold))
    names = (OTHERS, *manifest.classes)
    return LabelSplit(names, tuple(i for i in range(len(names)) if i not in unseen), unseen)


def load_query(path: Path, image_size: int, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Query image as the official loader: RGB, PIL bilinear resize to ``S x S``, normalise -> ``(1, 3, S, S)``.

    The stored pixel order (no EXIF transpose), as HSNet's ``read_img`` (juhongm999/hsnet data/pascal.py, line 89:
    ``Image.open(...)``), which the published masks follow."""
    rgb = Image.fromarray(read_rgb(path, "query image", orient=False)).resize(
        (image_size, image_size), Image.BILINEAR
    )
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = normalize_image(x, mean, std)
    return x[None]


def resize_labels(label: np.ndarray, image_size: int) -> Tensor:
    """Label map ``(H, W)`` -> ``(S, S)`` int64 with ``F.interpolate(mode="nearest")`` (the official resize)."""
    t = torch.from_numpy(np.asarray(label).astype(np.int64)).float()[None, None]
    return F.interpolate(t, size=(image_size, image_size), mode="nearest")[0, 0].long()


def class_target(mask: Tensor, class_id: int) -> Tensor:
    """Class map -> binary episode target: 1 = ``class_id``, 255 = void (kept), 0 = everything else."""
    target = (mask == class_id).long()
    target[mask == IGNORE] = IGNORE
    return target


@dataclass(frozen=True)
class EpisodeSource:
    """Everything the shared episodic loop needs, built by a benchmark adapter.

    ``episodes``: the served sequence (repeats count repeatedly, as in the official loaders). ``images``: the
    distinct query images of the fold (generalised setting). ``class_map(image_id)``: ``(H, W)`` int array with 0 =
    background, ``c`` = class ``c`` (1-based), 255 = void. ``info``: provenance recorded with the result.
    """

    benchmark: str
    fold: int
    class_names: tuple[str, ...]
    class_ids: tuple[int, ...]
    episodes: tuple[Episode, ...]
    images: tuple[str, ...]
    image_path: Callable[[str], Path]
    class_map: Callable[[str], np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


def cycle_episodes(listed: Sequence[Episode], num_episodes: int | None, cap: int | None) -> list[Episode]:
    """Served episodes of a fixed list: ``num_episodes`` (default ``cap``, else every listed episode once), cycling
    through it as HSNet's loader does (``data/pascal.py``: ``__len__`` returns 1000 on the test split and
    ``__getitem__`` takes ``idx %= len(self.img_metadata)``), so a list shorter than ``cap`` repeats its first
    entries."""
    n = len(listed)
    if n == 0:
        raise InputError("the episode list is empty: nothing to evaluate")
    total = (n if cap is None else cap) if num_episodes is None else num_episodes
    return [listed[j % n] for j in range(total)]
