"""The embedded synthetic colour x texture dataset: determinism, coverage, visibility, idempotence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lseg_nb.data.datasets import SegmentationDataset
from lseg_nb.data.manifests import load_manifest
from lseg_nb.data.synthetic import (
    CLASS_NAMES,
    PARAMS_FILE,
    default_synthetic_root,
    generate_synthetic,
    make_sample,
    pattern_mask,
)

SMALL = dict(n_train=20, n_val=2, n_test=2, size=64)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = tree_bytes(generate_synthetic(tmp_path / "a", seed=1, **SMALL))
    b = tree_bytes(generate_synthetic(tmp_path / "b", seed=1, **SMALL))
    c = tree_bytes(generate_synthetic(tmp_path / "c", seed=2, **SMALL))
    assert len(a) == 2 * 24 + 3 + 1 + 1  # images + labels, 3 splits, classes.txt, params
    assert a == b
    assert a.keys() == c.keys() and a["images/train_0000.png"] != c["images/train_0000.png"]


def test_dataset_reads_generated_set_and_every_class_appears(tmp_path):
    root = generate_synthetic(tmp_path / "s", seed=0, n_train=32, n_val=2, n_test=2, size=48)
    manifest = load_manifest("synthetic_textures")
    assert manifest.class_names(root) == list(CLASS_NAMES)
    ds = SegmentationDataset(root, manifest, "train")
    assert len(ds) == 32 and ds.ids[0] == "train_0000"
    present = set()
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 48, 48) and label.shape == (48, 48)
        assert 255 not in label  # no void pixels by design
        present |= set(label.unique().tolist())
    assert present == set(range(16))
    assert [len(SegmentationDataset(root, manifest, s)) for s in ("val", "test")] == [2, 2]


def test_patterns_are_visible():
    rng = np.random.default_rng(0)
    assert not pattern_mask("plain", 96, rng).any()
    for p in ("stripes", "dots", "checks"):
        m = pattern_mask(p, 96, rng)
        assert 0.1 < m.mean() < 0.9, p
        # a visible texture changes tone often along rows and columns (periods are 6-15 px)
        changes = (m[:, 1:] != m[:, :-1]).mean() + (m[1:] != m[:-1]).mean()
        assert changes > 0.05, p
    with pytest.raises(ValueError, match="unknown pattern 'zigzag'"):
        pattern_mask("zigzag", 8, rng)


def test_textured_regions_have_contrast_and_plain_ones_do_not():
    stds = {"plain": [], "textured": []}
    for i in range(12):
        image, label = make_sample(0, "train", i, size=96)
        lum = image.astype(np.float32).mean(2) / 255
        for c in np.unique(label):
            mask = label == c
            if mask.sum() > 400:
                key = "plain" if CLASS_NAMES[c].endswith("plain") else "textured"
                stds[key].append(lum[mask].std())
    assert stds["plain"] and stds["textured"]
    assert max(stds["plain"]) < 0.06 < min(stds["textured"])


def test_colour_names_match_pixels():
    image, label = make_sample(0, "val", 3, size=96)
    for c in np.unique(label):
        colour = CLASS_NAMES[c].split()[0]
        mean = image[label == c].astype(np.float32).mean(0)
        dominant = {"red": [0], "green": [1], "blue": [2], "yellow": [0, 1]}[colour]
        others = [k for k in range(3) if k not in dominant]
        assert mean[dominant].min() > mean[others].max(), (CLASS_NAMES[c], mean)


def test_first_region_class_cycles_with_index():
    for i in (0, 5, 17):
        _, label = make_sample(0, "train", i, size=48)
        assert i % 16 in label


def test_idempotent_regenerates_on_new_params_and_refuses_foreign_folder(tmp_path):
    root = generate_synthetic(tmp_path / "s", **SMALL)
    marker = root / PARAMS_FILE
    mtime = (root / "images" / "train_0000.png").stat().st_mtime_ns
    generate_synthetic(root, **SMALL)
    assert (root / "images" / "train_0000.png").stat().st_mtime_ns == mtime
    generate_synthetic(root, **{**SMALL, "n_train": 3})
    assert not (root / "images" / "train_0010.png").exists()
    assert (root / "splits" / "train.txt").read_text().split() == ["train_0000", "train_0001", "train_0002"]
    assert '"n_train": 3' in marker.read_text()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not made by generate_synthetic"):
        generate_synthetic(foreign, **SMALL)


def test_default_root_uses_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LSEG_NB_CACHE", str(tmp_path / "cache"))
    assert default_synthetic_root() == tmp_path / "cache" / "synthetic_textures"
    root = generate_synthetic(n_train=2, n_val=1, n_test=1, size=32)
    assert root == default_synthetic_root()
    # the manifest's data-root resolution finds the generated set in the cache
    monkeypatch.delenv("LSEG_NB_DATA", raising=False)
    monkeypatch.setenv("LSEG_NB_SHARED", str(tmp_path / "no_shared"))
    assert SegmentationDataset(None, "synthetic_textures", "train").root == root


def test_an_interrupted_generation_leaves_no_partial_set_and_concurrent_runs_agree(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import lseg_nb.data.synthetic as synthetic

    real = synthetic.make_sample
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("simulated crash mid-generation")
        return real(*args, **kwargs)

    root = tmp_path / "synth"
    monkeypatch.setattr(synthetic, "make_sample", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(root, n_train=4, n_val=2, n_test=2, size=32)
    assert not root.exists(), "a crash must not leave a half-written set where readers look for one"
    assert not list(tmp_path.iterdir()), "the private temporary folder is removed"
    monkeypatch.setattr(synthetic, "make_sample", real)
    with ThreadPoolExecutor(3) as pool:
        roots = list(
            pool.map(lambda _: generate_synthetic(root, n_train=4, n_val=2, n_test=2, size=32), range(3))
        )
    assert roots == [root] * 3 and sorted(p.name for p in tmp_path.iterdir()) == ["synth"]
    assert len(list((root / "images").glob("*.png"))) == 8
