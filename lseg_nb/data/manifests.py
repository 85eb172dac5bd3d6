"""Dataset manifests: small YAML files (data, never code) describing a dataset's layout, classes, splits and
zero-shot folds, plus data-root resolution.

Manifests live in ``data_manifests/<name>.yaml`` at the repository root (the source; ``lseg_nb/data_manifests``
links to it and wheels ship a copy) and are read with a strict ``yaml.SafeLoader`` (no Python tags, no duplicate
keys, bounded aliases); every field is type-checked and errors name the file and the field (values shortened).
Every path a manifest builds (layout folders, suffixes, split and class files) stays inside the data root
(:func:`~lseg_nb.utils.io.inside`); split names are plain names, since they end up in output file names.
Required fields are ``name``, ``layout`` and ``splits`` (plus ``classes`` or ``layout.classes_file``);
``source_url`` and ``licence`` are optional because a private dataset has neither, but when given they must be
non-empty strings (an empty value is more likely a slip than a statement).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lseg_nb.data.roots import cache_dir, resolve_data_root, shared_dir  # noqa: F401 - re-exported
from lseg_nb.utils.errors import InputError, shorten
from lseg_nb.utils.io import inside, relative_part, user_path
from lseg_nb.utils.parsing import DataFileError, parse_yaml, read_unique_lines

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parent
# The package's data_manifests/ is a link to the repository's top-level folder in a checkout and a real folder
# inside an installed wheel, so the same path works for editable and normal installs.
MANIFEST_DIR = PACKAGE_ROOT / "data_manifests"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ManifestError(InputError):
    """A manifest is malformed, or the data on disk disagrees with it."""


@dataclass(frozen=True)
class Layout:
    """Where images, labels and class names live inside a dataset root."""

    images_dir: str = "images"
    labels_dir: str = "labels"
    image_suffix: str = ".png"
    label_suffix: str = ".png"
    classes_file: str | None = None
    ignore_index: int = 255


@dataclass(frozen=True)
class SplitSpec:
    """One split: a text file of image ids (one per line) and its optional sha256."""

    name: str
    file: str
    sha256: str | None = None


@dataclass(frozen=True)
class ZeroShotFold:
    """A zero-shot fold: the classes held out from training (``unseen``)."""

    name: str
    unseen: tuple[str, ...]


@dataclass(frozen=True)
class DatasetManifest:
    """A validated dataset manifest (see ``data_manifests/*.yaml``)."""

    name: str
    layout: Layout
    splits: tuple[SplitSpec, ...]
    #: where the data comes from and under which terms; optional (private data has neither), "" when absent
    source_url: str = ""
    licence: str = ""
    classes: tuple[str, ...] | None = None
    zero_shot_folds: tuple[ZeroShotFold, ...] = ()
    description: str = ""
    path: Path | None = None
    #: words that are not class names, for open-vocabulary diagnostics (nearest-text maps, neighbour ranks)
    distractors: tuple[str, ...] = ()

    @property
    def split_names(self) -> list[str]:
        """Names of the splits, in manifest order."""
        return [s.name for s in self.splits]

    def split(self, name: str) -> SplitSpec:
        """The split called ``name``; unknown names raise :class:`ManifestError` listing the valid ones."""
        for s in self.splits:
            if s.name == name:
                return s
        raise ManifestError(f"{self._file}: no split {shorten(name)}; available splits: {self.split_names}")

    @property
    def _file(self) -> str:
        return self.path.name if self.path else f"manifest {self.name!r}"

    def class_names(self, root: str | Path | None = None) -> list[str]:
        """Class names in index order: inline ``classes``, or ``layout.classes_file`` read from ``root``.

        When both are given the file must agree with the manifest.
        """
        if self.layout.classes_file is None or root is None:
            if self.classes is None:
                raise ManifestError(
                    f"{self._file}: classes come from layout.classes_file; pass the data root to read them"
                )
            return list(self.classes)
        path = inside(root, self.layout.classes_file, what=f"{self._file}: layout.classes_file")
        if not path.is_file():
            raise FileNotFoundError(f"{self._file}: classes file {path} does not exist (layout.classes_file)")
        names = read_class_lines(path)
        if self.classes is not None and tuple(names) != self.classes:
            raise ManifestError(
                f"{path}: class list {names} disagrees with classes {list(self.classes)} in {self._file}"
            )
        _check_folds(self.zero_shot_folds, names, f"{self._file} (classes from {path})")
        return names

    def fold(self, i_or_name: int | str, root: str | Path | None = None) -> tuple[list[int], list[int]]:
        """``(seen_idx, unseen_idx)`` class indices (sorted) of zero-shot fold ``i_or_name``."""
        names = self.class_names(root)
        unseen = set(self._get_fold(i_or_name).unseen)
        return (
            [i for i, n in enumerate(names) if n not in unseen],
            [i for i, n in enumerate(names) if n in unseen],
        )

    def fold_classes(
        self, i_or_name: int | str, root: str | Path | None = None
    ) -> tuple[list[str], list[str]]:
        """``(seen_names, unseen_names)`` of a zero-shot fold, in class-index order."""
        names = self.class_names(root)
        seen, unseen = self.fold(i_or_name, root)
        return [names[i] for i in seen], [names[i] for i in unseen]

    def fold_index(self, i_or_name: int | str) -> int:
        """The index of zero-shot fold ``i_or_name`` (an index or a fold's name), for records that store numbers."""
        return self.zero_shot_folds.index(self._get_fold(i_or_name))

    def _get_fold(self, i_or_name: int | str) -> ZeroShotFold:
        folds = self.zero_shot_folds
        if isinstance(i_or_name, int) and not isinstance(i_or_name, bool):
            if 0 <= i_or_name < len(folds):
                return folds[i_or_name]
        else:
            for f in folds:
                if f.name == i_or_name:
                    return f
        raise ManifestError(
            f"{self._file}: no zero-shot fold {shorten(i_or_name)}; folds are 0..{len(folds) - 1} = "
            f"{[f.name for f in folds]}"
        )

    def verify_splits(self, root: str | Path) -> dict[str, str]:
        """Check every split file against its sha256; returns ``{split: actual sha256}`` for run records."""
        return {s.name: self.verify_split(root, s.name) for s in self.splits}

    def verify_split(self, root: str | Path, name: str) -> str:
        """Check split ``name``'s file exists and matches its sha256 (when the manifest gives one); its sha256."""
        s = self.split(name)
        path = inside(root, s.file, what=f"{self._file}: splits.{s.name}.file")
        if not path.is_file():
            raise FileNotFoundError(f"{self._file}: split file {path} (splits.{s.name}.file) does not exist")
        actual = file_sha256(path)
        if s.sha256 is not None and actual != s.sha256:
            raise ManifestError(
                f"{path}: sha256 mismatch for split {s.name!r}: expected {s.sha256} "
                f"({self._file}), actual {actual}. The split list changed; restore it or update the "
                "manifest deliberately."
            )
        return actual


def read_class_lines(path: Path) -> list[str]:
    """Class names of a ``classes.txt`` or label file, one per line in index order
    (:func:`~lseg_nb.utils.parsing.read_unique_lines`: blank and repeated lines refused naming the line)."""
    try:
        return read_unique_lines(path, "class name")
    except DataFileError as e:
        raise ManifestError(str(e)) from None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_manifests() -> list[str]:
    """Names of the manifests shipped in ``data_manifests/``."""
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))


def manifest_path(name_or_path: str | Path) -> Path:
    """Path of a manifest given a bare name (``msrc_v2``) or a path to a YAML file."""
    s = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in s or os.sep in s or s.endswith((".yaml", ".yml")):
        path = user_path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"manifest file {path} does not exist")
        return path
    path = MANIFEST_DIR / f"{s}.yaml"
    if not path.is_file():
        raise ManifestError(
            f"unknown manifest {shorten(s)}; shipped manifests: {list_manifests()} (in {MANIFEST_DIR})"
        )
    return path


def manifest_sha256(name_or_path: str | Path) -> str:
    """sha256 of a manifest file (recorded with runs so results name the exact dataset definition)."""
    return file_sha256(manifest_path(name_or_path))


def read_plain_yaml(path: str | Path) -> Any:
    """Parse a YAML file as plain data (safe loader, no tags, no duplicate keys); errors name the file."""
    path = Path(path)
    try:
        return parse_yaml(path.read_text(), path.name)
    except DataFileError as e:
        raise ManifestError(str(e)) from None


def load_manifest(name_or_path: str | Path) -> DatasetManifest:
    """Load and validate a manifest by bare name (``"msrc_v2"``) or path; errors name the file and field."""
    path = manifest_path(name_or_path)
    return _parse(read_plain_yaml(path), path)


# ---------------------------------------------------------------- validation helpers


def _fail(where: str, msg: str) -> ManifestError:
    return ManifestError(f"{where}: {msg}")


def _mapping(value: Any, where: str, required: set[str], optional: set[str]) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(map(str, set(value) - required - optional))
    if unknown:
        raise _fail(
            where, f"unknown field(s) {shorten(unknown)}; valid fields are {sorted(required | optional)}"
        )
    missing = sorted(required - set(value))
    if missing:
        raise _fail(where, f"missing required field(s) {missing}")
    return value


def _str(value: Any, where: str, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"expected a non-empty string, got {shorten(value)}")
    return value


def _relpath(value: Any, where: str, allow_none: bool = False) -> Any:
    value = _str(value, where, allow_none)
    try:
        return value if value is None else relative_part(value, where, "the data root")
    except InputError as e:
        raise ManifestError(str(e)) from None


def _suffix(value: Any, where: str) -> str:
    value = _str(value, where)
    if re.search(r"[/\\\0]", value):
        raise _fail(where, f"{shorten(value)} must be a file-name ending such as '.png', without '/' or '\\'")
    return value


def _check_classes(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        _str(n, f"{where}[{i}]")
        if n in seen:
            raise _fail(f"{where}[{i}]", f"duplicate class name {shorten(n)}; class names must be unique")
        seen.add(n)


def _check_folds(folds: tuple[ZeroShotFold, ...], classes: list[str], where: str) -> None:
    known = set(classes)
    for i, f in enumerate(folds):
        for j, n in enumerate(f.unseen):
            if n not in known:
                raise _fail(
                    f"{where}: zero_shot_folds[{i}].unseen[{j}]",
                    f"{shorten(n)} is not a class; known classes: {shorten(classes, 300)}",
                )
        if len(set(f.unseen)) == len(known):
            raise _fail(f"{where}: zero_shot_folds[{i}].unseen", "holds every class; no seen class is left")


def _parse_layout(value: Any, where: str) -> Layout:
    d = _mapping(value, where, set(), {f for f in Layout.__dataclass_fields__})
    kw: dict[str, Any] = {}
    for key in ("images_dir", "labels_dir", "classes_file"):
        if key in d:
            kw[key] = _relpath(d[key], f"{where}.{key}", allow_none=key == "classes_file")
    for key in ("image_suffix", "label_suffix"):
        if key in d:
            kw[key] = _suffix(d[key], f"{where}.{key}")
    if "ignore_index" in d:
        v = d["ignore_index"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _fail(f"{where}.ignore_index", f"expected a non-negative integer, got {shorten(v)}")
        kw["ignore_index"] = v
    return Layout(**kw)


def _parse_splits(value: Any, where: str) -> tuple[SplitSpec, ...]:
    if not isinstance(value, dict) or not value:
        raise _fail(
            where, f"expected a non-empty mapping split_name -> {{file, sha256}}, got {shorten(value)}"
        )
    out = []
    for name, spec in value.items():
        w = f"{where}.{str(name)[:40]}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail(
                w, "a split name is a plain name (letters, digits, '_', '-', '.'), used in file names"
            )
        d = _mapping(spec, w, {"file"}, {"sha256"})
        sha = d.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
            raise _fail(f"{w}.sha256", f"expected 64 lowercase hex digits, got {shorten(sha)}")
        out.append(SplitSpec(name=name, file=_relpath(d["file"], f"{w}.file"), sha256=sha))
    return tuple(out)


def _parse_folds(value: Any, where: str) -> tuple[ZeroShotFold, ...]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list of {{name, unseen}}, got {type(value).__name__}")
    folds, names = [], set()
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        d = _mapping(item, w, {"name", "unseen"}, set())
        name = _str(d["name"], f"{w}.name")
        if name in names:
            raise _fail(f"{w}.name", f"duplicate fold name {shorten(name)}")
        names.add(name)
        unseen = d["unseen"]
        if not isinstance(unseen, list) or not unseen:
            raise _fail(f"{w}.unseen", f"expected a non-empty list of class names, got {shorten(unseen)}")
        for j, n in enumerate(unseen):
            _str(n, f"{w}.unseen[{j}]")
        if len(set(unseen)) != len(unseen):
            raise _fail(f"{w}.unseen", f"lists a class twice: {shorten(unseen)}")
        folds.append(ZeroShotFold(name=name, unseen=tuple(unseen)))
    return tuple(folds)


def _parse_distractors(value: Any, classes: tuple[str, ...] | None, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list of words that are not class names, got {type(value).__name__}")
    for i, w in enumerate(value):
        _str(w, f"{where}[{i}]")
        if w in value[:i]:
            raise _fail(f"{where}[{i}]", f"{shorten(w)} is listed twice")
        if classes is not None and w in classes:
            raise _fail(
                f"{where}[{i}]", f"{shorten(w)} is a class name; distractors are texts besides the classes"
            )
    return tuple(value)


def _parse(data: Any, path: Path) -> DatasetManifest:
    f = path.name
    required = {"name", "layout", "splits"}
    optional = {"source_url", "licence", "classes", "zero_shot_folds", "description", "distractors"}
    d = _mapping(data, f, required, optional)
    name = _str(d["name"], f"{f}: name")
    if not _NAME.match(name):
        raise _fail(
            f"{f}: name", f"{shorten(name)} must be a plain folder name (letters, digits, '_', '-', '.')"
        )
    layout = _parse_layout(d["layout"], f"{f}: layout")
    classes = d.get("classes")
    if classes is None:
        if layout.classes_file is None:
            raise _fail(f"{f}: classes", "missing: list the class names or set layout.classes_file")
    else:
        if not isinstance(classes, list) or not classes:
            raise _fail(f"{f}: classes", f"expected a non-empty list of class names, got {shorten(classes)}")
        _check_classes(classes, f"{f}: classes")
        if layout.ignore_index < len(classes):
            raise _fail(
                f"{f}: layout.ignore_index",
                f"{layout.ignore_index} collides with a class index (there are {len(classes)} classes)",
            )
        classes = tuple(classes)
    folds = _parse_folds(d.get("zero_shot_folds", []), f"{f}: zero_shot_folds")
    if classes is not None:
        _check_folds(folds, list(classes), f)
    return DatasetManifest(
        name=name,
        source_url=_str(d["source_url"], f"{f}: source_url") if "source_url" in d else "",
        licence=_str(d["licence"], f"{f}: licence") if "licence" in d else "",
        layout=layout,
        splits=_parse_splits(d["splits"], f"{f}: splits"),
        classes=classes,
        zero_shot_folds=folds,
        description=_str(d["description"], f"{f}: description") if "description" in d else "",
        path=path,
        distractors=_parse_distractors(d.get("distractors", []), classes, f"{f}: distractors"),
    )
