"""Manifest loading/validation, folds, split hashes and data-root resolution."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lseg_nb.data.manifests import (
    ManifestError,
    list_manifests,
    load_manifest,
    manifest_sha256,
    resolve_data_root,
)

MSRC_CLASSES = (
    "building grass tree cow horse sheep sky mountain aeroplane water face car bicycle flower sign bird book chair "
    "road cat dog body boat"
).split()

BASE = {
    "name": "toy",
    "source_url": "https://example.org/toy",
    "licence": "test data",
    "layout": {
        "images_dir": "images",
        "labels_dir": "labels",
        "image_suffix": ".png",
        "label_suffix": ".png",
    },
    "classes": ["cat", "dog", "horse"],
    "splits": {"train": {"file": "splits/train.txt"}},
    "zero_shot_folds": [{"name": "f0", "unseen": ["horse"]}],
}


def write(tmp_path: Path, data: dict | str, name: str = "toy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def broken(tmp_path: Path, edit) -> Path:
    data = copy.deepcopy(BASE)
    edit(data)
    return write(tmp_path, data)


def test_shipped_manifests_load():
    assert {"msrc_v2", "synthetic_textures"} <= set(list_manifests())
    for name in list_manifests():
        m = load_manifest(name)
        assert m.name == name and m.path is not None and m.path.name == f"{name}.yaml"


def test_msrc_manifest_folds_are_consecutive_groups():
    m = load_manifest("msrc_v2")
    assert m.class_names() == MSRC_CLASSES
    assert m.split_names == ["train", "val", "test"]
    assert all(s.sha256 is not None for s in m.splits)
    assert len(m.zero_shot_folds) == 5
    for i in range(4):
        seen, unseen = m.fold(i)
        assert unseen == list(range(6 * i, min(6 * i + 6, 23)))
        assert sorted(seen + unseen) == list(range(23))
    assert m.fold("fold3") == m.fold(3)
    assert m.fold_classes(3)[1] == ["road", "cat", "dog", "body", "boat"]


def test_msrc_neighbour_fold_keeps_a_seen_neighbour_per_unseen_class():
    m = load_manifest("msrc_v2")
    assert m.fold("neighbours") == m.fold(4)
    seen, unseen = m.fold_classes("neighbours")
    assert unseen == ["sheep", "face", "bicycle", "flower", "cat", "boat"]  # class-index order
    neighbour = {
        "sheep": "cow",
        "bicycle": "car",
        "flower": "grass",
        "face": "body",
        "cat": "dog",
        "boat": "water",
    }
    assert set(neighbour) == set(unseen) and set(neighbour.values()) <= set(seen)


def test_synthetic_manifest_folds_form_latin_square():
    m = load_manifest("synthetic_textures")
    names = m.class_names()
    assert len(names) == 16
    held_out = []
    for i in range(4):
        seen_names, unseen_names = m.fold_classes(i)
        colours = {n.split()[0] for n in unseen_names}
        patterns = {n.split()[1] for n in unseen_names}
        assert len(colours) == 4 and len(patterns) == 4  # one per colour and per pattern
        assert {n.split()[0] for n in seen_names} == colours and {
            n.split()[1] for n in seen_names
        } == patterns
        held_out += unseen_names
    assert sorted(held_out) == sorted(names)  # every class is unseen in exactly one fold
    assert m.fold_classes(0)[1] == ["red stripes", "green dots", "blue checks", "yellow plain"]


def test_shipped_manifests_name_distractors_besides_their_classes():
    for name in ("msrc_v2", "synthetic_textures"):
        m = load_manifest(name)
        assert len(m.distractors) >= 10 and not set(m.distractors) & set(m.class_names())
    assert "animal" in load_manifest("msrc_v2").distractors  # words for photographs, not the synthetic set's
    assert "stripes" not in load_manifest("msrc_v2").distractors


def test_valid_toy_manifest(tmp_path):
    m = load_manifest(write(tmp_path, BASE))
    assert m.classes == ("cat", "dog", "horse") and m.layout.ignore_index == 255
    assert m.distractors == ()  # optional field
    assert load_manifest(write(tmp_path, {**BASE, "distractors": ["zebra", "red"]})).distractors == (
        "zebra",
        "red",
    )
    assert m.fold(0) == ([0, 1], [2])
    with pytest.raises(ManifestError, match="no zero-shot fold 5"):
        m.fold(5)
    with pytest.raises(ManifestError, match="no split 'trian'"):
        m.split("trian")


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda d: d.update(colour="red"), r"unknown field\(s\) \['colour'\]"),
        (lambda d: d["layout"].update(img_dir="x"), r"layout: unknown field\(s\) \['img_dir'\]"),
        (lambda d: d["splits"]["train"].update(md5="x"), r"splits.train: unknown field\(s\) \['md5'\]"),
        (
            lambda d: d["zero_shot_folds"][0].update(unseen=["hors"]),
            r"zero_shot_folds\[0\].unseen\[0\]: 'hors' is not a class; known classes: \['cat'",
        ),
        (
            lambda d: d["zero_shot_folds"][0].update(unseen=[]),
            r"zero_shot_folds\[0\].unseen: expected a non-empty",
        ),
        (lambda d: d["zero_shot_folds"][0].update(unseen=["cat", "dog", "horse"]), "no seen class is left"),
        (lambda d: d.update(classes=["cat", "dog", "cat"]), r"classes\[2\]: duplicate class name 'cat'"),
        (lambda d: d.update(classes="cat dog"), "classes: expected a non-empty list"),
        (
            lambda d: d["layout"].update(ignore_index="255"),
            "layout.ignore_index: expected a non-negative integer",
        ),
        (lambda d: d["layout"].update(ignore_index=1), "layout.ignore_index: 1 collides with a class index"),
        (lambda d: d.update(name=3), "name: expected a non-empty string"),
        (lambda d: d.update(name="../evil"), "name: '../evil' must be a plain folder name"),
        (
            lambda d: d["splits"]["train"].update(sha256="abc123"),
            "splits.train.sha256: expected 64 lowercase hex",
        ),
        (
            lambda d: d["splits"]["train"].update(file="/etc/passwd"),
            "splits.train.file: '/etc/passwd' must be",
        ),
        (lambda d: d.pop("splits"), r"missing required field\(s\) \['splits'\]"),
        (lambda d: d.update(licence=""), "licence: expected a non-empty string"),
        (lambda d: d.update(distractors="zebra"), "distractors: expected a list of words"),
        (lambda d: d.update(distractors=["zebra", "dog"]), r"distractors\[1\]: 'dog' is a class name"),
        (lambda d: d.update(distractors=["zebra", "zebra"]), r"distractors\[1\]: 'zebra' is listed twice"),
        (lambda d: d.update(distractors=["zebra", " "]), r"distractors\[1\]: expected a non-empty string"),
        (lambda d: d.pop("classes"), "classes: missing"),
    ],
)
def test_invalid_manifest_names_file_and_field(tmp_path, edit, fragment):
    with pytest.raises(ManifestError, match=r"toy\.yaml: .*" + fragment):
        load_manifest(broken(tmp_path, edit))


def test_source_url_and_licence_are_optional_for_private_data(tmp_path):
    data = copy.deepcopy(BASE)
    del data["source_url"], data["licence"]
    m = load_manifest(write(tmp_path, data))
    assert (m.source_url, m.licence) == ("", "")
    assert m.classes == ("cat", "dog", "horse")
    given_ = load_manifest(write(tmp_path, BASE, "given.yaml"))
    assert (given_.source_url, given_.licence) == ("https://example.org/toy", "test data")


def test_python_tag_is_rejected(tmp_path):
    text = yaml.safe_dump(BASE) + "description: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(ManifestError, match="toy.yaml: not a plain-data YAML file"):
        load_manifest(write(tmp_path, text))


def test_duplicate_key_is_rejected(tmp_path):
    text = yaml.safe_dump(BASE) + "licence: again\n"
    with pytest.raises(ManifestError, match="duplicate key 'licence'"):
        load_manifest(write(tmp_path, text))


def test_unknown_name_and_missing_path():
    with pytest.raises(ManifestError, match="unknown manifest 'msrc_v3'.*msrc_v2"):
        load_manifest("msrc_v3")
    with pytest.raises(FileNotFoundError):
        load_manifest("/nonexistent/manifest.yaml")


def test_manifest_sha256_matches_file_bytes():
    m = load_manifest("msrc_v2")
    assert manifest_sha256("msrc_v2") == hashlib.sha256(m.path.read_bytes()).hexdigest()


def make_root(root: Path, ids=("a", "b")) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


def test_verify_splits_and_classes_file(tmp_path):
    root = make_root(tmp_path / "data")
    good = hashlib.sha256((root / "splits" / "train.txt").read_bytes()).hexdigest()
    data = copy.deepcopy(BASE)
    data["splits"]["train"]["sha256"] = good
    assert load_manifest(write(tmp_path, data)).verify_splits(root) == {"train": good}
    data["splits"]["train"]["sha256"] = "0" * 64
    with pytest.raises(
        ManifestError, match=f"train.txt: sha256 mismatch.*expected {'0' * 64}.*actual {good}"
    ):
        load_manifest(write(tmp_path, data)).verify_splits(root)
    # classes read from the data root must agree with the inline list
    data["layout"]["classes_file"] = "classes.txt"
    (root / "classes.txt").write_text("cat\ndog\nhorse\n")
    m = load_manifest(write(tmp_path, data))
    assert m.class_names(root) == ["cat", "dog", "horse"]
    (root / "classes.txt").write_text("cat\ndog\nzebra\n")
    with pytest.raises(ManifestError, match=r"classes.txt: class list .* disagrees with classes"):
        m.class_names(root)
    # without inline classes, fold names are checked against the file
    del data["classes"]
    m = load_manifest(write(tmp_path, data))
    with pytest.raises(ManifestError, match="'horse' is not a class"):
        m.fold(0, root)


def test_resolve_data_root_order(tmp_path, monkeypatch):
    m = load_manifest(write(tmp_path, BASE))
    monkeypatch.delenv("LSEG_NB_DATA", raising=False)
    monkeypatch.setenv("LSEG_NB_SHARED", str(tmp_path / "shared"))
    monkeypatch.setenv("LSEG_NB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        FileNotFoundError, match=r"dataset 'toy' not found; tried: .*shared/datasets/toy.*--data-root"
    ):
        resolve_data_root(None, m)
    cached = make_root(tmp_path / "cache" / "toy")
    assert resolve_data_root(None, m) == cached
    shared = make_root(tmp_path / "shared" / "datasets" / "toy")
    assert resolve_data_root(None, m) == shared
    env_parent = make_root(tmp_path / "envdata" / "toy")
    monkeypatch.setenv("LSEG_NB_DATA", str(tmp_path / "envdata"))
    assert resolve_data_root(None, m) == env_parent
    monkeypatch.setenv("LSEG_NB_DATA", str(env_parent))  # the dataset folder itself
    assert resolve_data_root(None, m) == env_parent
    explicit = make_root(tmp_path / "explicit")
    assert resolve_data_root(explicit, m) == explicit
    with pytest.raises(FileNotFoundError, match="data root .*missing_dir"):
        resolve_data_root(tmp_path / "missing_dir", m)


@pytest.mark.shared
def test_msrc_split_hashes(msrc_root):
    m = load_manifest("msrc_v2")
    hashes = m.verify_splits(msrc_root)
    assert set(hashes) == {"train", "val", "test"}
    assert m.class_names(msrc_root) == MSRC_CLASSES


_CLASS = st.one_of(
    st.sampled_from(["cat", "dog", "horse", "red stripes", "", "   "]),
    st.text(st.characters(whitelist_categories=("L", "N", "Zs")), max_size=8),
)
_SPLIT_FILE = st.sampled_from(
    ["splits/train.txt", "train.txt", "lists/a/b.txt", "../train.txt", "splits/../../x.txt", "/etc/passwd"]
)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(classes=st.lists(_CLASS, min_size=1, max_size=8), split_file=_SPLIT_FILE)
def test_manifest_parsing_property(tmp_path_factory, classes, split_file):
    """Any class list and split path either loads unchanged or is refused naming the first bad entry: a blank or
    repeated class name, or a split file outside the data root."""
    data = copy.deepcopy(BASE) | {"classes": classes, "zero_shot_folds": []}
    data["splits"] = {"train": {"file": split_file}}
    path = write(tmp_path_factory.mktemp("manifest"), data)
    first_bad = next(
        (
            (i, "expected a non-empty string" if not c.strip() else "duplicate class name")
            for i, c in enumerate(classes)
            if not c.strip() or c in classes[:i]
        ),
        None,
    )
    outside = split_file.startswith("/") or ".." in split_file.split("/")
    if first_bad is not None:
        with pytest.raises(ManifestError, match=rf"toy\.yaml: classes\[{first_bad[0]}\]: {first_bad[1]}"):
            load_manifest(path)
    elif outside:
        with pytest.raises(
            ManifestError, match=r"toy\.yaml: splits\.train\.file: .* must be a path relative"
        ):
            load_manifest(path)
    else:
        m = load_manifest(path)
        assert m.classes == tuple(classes) and m.split("train").file == split_file


# ---- round 3: paths stay inside the data root, plain split names, classes.txt lines, bounded aliases ----

BOMB_LEVELS = "abcdefghi"


def alias_bomb() -> str:
    """A YAML flow list of nested aliases (~300 bytes) that expands to 9**9 = 387 million strings."""
    items = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip(BOMB_LEVELS, BOMB_LEVELS[1:]):
        items.append(f"&{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_suffix", "/../../../outside/x.png"),
        ("label_suffix", "/../x.png"),
        ("image_suffix", "a\\..\\b"),
    ],
)
def test_layout_suffixes_are_file_name_endings(tmp_path, key, value):
    data = copy.deepcopy(BASE)
    data["layout"][key] = value
    with pytest.raises(ManifestError, match=rf"toy\.yaml: layout\.{key}: .* must be a file-name ending"):
        load_manifest(write(tmp_path, data))


def test_a_dataset_never_reads_outside_its_root(tmp_path):
    """Even a layout built in Python (no manifest parsing) cannot reach a file outside the data root."""
    import dataclasses

    from lseg_nb.data.datasets import SegmentationDataset

    root = make_root(tmp_path / "data")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.png").write_bytes(b"secret")
    m = load_manifest(write(tmp_path, BASE))
    m = dataclasses.replace(m, layout=dataclasses.replace(m.layout, image_suffix="/../../outside/x.png"))
    ds = SegmentationDataset(root, m, "train")
    with pytest.raises(ValueError, match="must be a path relative to .*data"):
        ds.raw_image(0)


@pytest.mark.parametrize("name", ["x/../../../../out/z", "../z", "a b", ".hidden"])
def test_split_names_are_plain_names(tmp_path, name):
    data = copy.deepcopy(BASE)
    data["splits"] = {name: {"file": "splits/train.txt"}}
    with pytest.raises(ManifestError, match="a split name is a plain name"):
        load_manifest(write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("cat\n\ndog\nhorse\n", 2, "blank line"),
        ("cat\n   \ndog\nhorse\n", 2, "blank line"),
        ("cat\ndog\ncat\n", 3, "'cat' is listed again (first on line 1)"),
    ],
)
def test_classes_file_lines_are_refused_naming_the_line(tmp_path, text, line, reason):
    """A dropped blank line would shift every later class index by one: refused, never skipped."""
    root = make_root(tmp_path / "data")
    data = copy.deepcopy(BASE)
    del data["classes"]
    data["zero_shot_folds"] = []
    data["layout"]["classes_file"] = "classes.txt"
    (root / "classes.txt").write_text(text)
    m = load_manifest(write(tmp_path, data))
    with pytest.raises(ManifestError, match=rf"classes\.txt:{line}: .*{re.escape(reason)}"):
        m.class_names(root)
    (root / "classes.txt").write_text("cat\ndog\nhorse\n\n\n")  # trailing blank lines shift nothing
    assert m.class_names(root) == ["cat", "dog", "horse"]


def test_classes_file_may_not_leave_the_data_root(tmp_path):
    data = copy.deepcopy(BASE)
    data["layout"]["classes_file"] = "../classes.txt"
    with pytest.raises(
        ManifestError, match="classes_file: '../classes.txt' must be a path relative to the data root"
    ):
        load_manifest(write(tmp_path, data))


def test_alias_bomb_in_a_description_fails_fast_with_a_short_message(tmp_path):
    import time

    text = yaml.safe_dump({k: v for k, v in BASE.items()}, sort_keys=False) + f"description: {alias_bomb()}\n"
    path = write(tmp_path, text)
    t0 = time.perf_counter()
    with pytest.raises(ManifestError, match="expands to more than") as e:
        load_manifest(path)
    assert time.perf_counter() - t0 < 1.0 and len(str(e.value)) < 700


def test_a_manifest_kept_with_its_data_finds_it(tmp_path, monkeypatch):
    monkeypatch.delenv("LSEG_NB_DATA", raising=False)
    monkeypatch.setenv("LSEG_NB_SHARED", str(tmp_path / "shared"))
    monkeypatch.setenv("LSEG_NB_CACHE", str(tmp_path / "cache"))
    root = make_root(tmp_path / "mydata")
    m = load_manifest(write(root, BASE, "manifest.yaml"))
    assert resolve_data_root(None, m) == root
    # the shared folder and the cache come after it; an explicit root before it
    make_root(tmp_path / "shared" / "datasets" / "toy")
    assert resolve_data_root(None, m) == root
    explicit = make_root(tmp_path / "explicit")
    assert resolve_data_root(explicit, m) == explicit
