"""Benchmark names -> adapters: ``prepare`` (what ``lseg-nb prepare BENCHMARK --root PATH`` runs) and the
evaluation episodes of a fold (what ``lseg-nb benchmark`` and ``lseg-nb evaluate --run`` score)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from lseg_nb.data.benchmarks import ade20k, coco20i, fss1000, ovss, pascal5i
from lseg_nb.data.benchmarks.base import EpisodeSource
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import user_path

PREPARE: dict[str, Callable[..., list[str]]] = {
    "pascal5i": pascal5i.prepare,
    "coco20i": coco20i.prepare,
    "fss1000": fss1000.prepare,
    "ade20k150": ade20k.prepare,
    # the open-vocabulary suites' datasets (checked in place; data_manifests/ovss/)
    **{name: partial(ovss.prepare_dataset, name) for name in ovss.ovss_names()},
}
# the official code's dataset names
ALIASES = {"pascal": "pascal5i", "coco": "coco20i", "fss": "fss1000", "ade20k": "ade20k150"}


def benchmark_name(name: str) -> str:
    """Canonical benchmark name of ``name`` (an official alias such as ``pascal`` is accepted)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PREPARE:
        raise InputError(
            f"unknown benchmark {name!r}; choose one of {sorted(PREPARE)} (aliases {sorted(ALIASES)})"
        )
    return key


def prepare(
    name: str, root: str | Path, out: str | Path | None = None, splits: str | Path | None = None
) -> list[str]:
    """Check (or convert) a local copy of benchmark ``name``; returns summary lines, raises naming what is missing."""
    return PREPARE[benchmark_name(name)](root, out=out, splits=splits)


def episode_source(
    name: str,
    root: str | Path,
    fold: int,
    splits: str | Path | None = None,
    seed: int = 0,
    num_episodes: int | None = None,
    labels_file: str | Path | None = None,
) -> EpisodeSource:
    """The paper's evaluation episodes of ``fold`` of an episodic benchmark (PASCAL-5i: HSNet's ``val`` lists
    found from ``splits``; COCO-20i: HSNet's ``val/fold<f>.pkl`` under ``splits`` when present, else the index
    ``prepare`` wrote, 1000 draws with ``seed``; FSS-1000: fold 0, every test image)."""
    key = benchmark_name(name)
    if key == "pascal5i":
        split_dir = pascal5i.find_split_dir(splits, root) / "val"
        return pascal5i.episode_source(root, fold, split_dir, labels_file, num_episodes)
    if key == "coco20i":
        pkl = [user_path(splits) / sub / "val" / f"fold{fold}.pkl" for sub in ("coco", ".")] if splits else []
        classwise = next((p for p in pkl if p.is_file()), None)
        return coco20i.episode_source(root, fold, classwise, seed, num_episodes, labels_file)
    if key == "fss1000":
        if fold != 0:
            raise InputError(f"FSS-1000 has one fold (0: the 240 test classes), got {fold}")
        return fss1000.episode_source(root, labels_file)
    raise InputError(f"{key} is not an episodic benchmark (episodic: pascal5i, coco20i, fss1000)")
