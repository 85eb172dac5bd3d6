"""Benchmark names -> adapters, and ``prepare`` (what ``lseg-nb prepare BENCHMARK --root PATH`` runs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lseg_nb.data.benchmarks import ade20k, coco20i, fss1000, pascal5i

PREPARE: dict[str, Callable[..., list[str]]] = {
    "pascal5i": pascal5i.prepare,
    "coco20i": coco20i.prepare,
    "fss1000": fss1000.prepare,
    "ade20k150": ade20k.prepare,
}
# the official code's dataset names
ALIASES = {"pascal": "pascal5i", "coco": "coco20i", "fss": "fss1000", "ade20k": "ade20k150"}


def benchmark_name(name: str) -> str:
    """Canonical benchmark name of ``name`` (an official alias such as ``pascal`` is accepted)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PREPARE:
        raise ValueError(
            f"unknown benchmark {name!r}; choose one of {sorted(PREPARE)} (aliases {sorted(ALIASES)})"
        )
    return key


def prepare(
    name: str, root: str | Path, out: str | Path | None = None, splits: str | Path | None = None
) -> list[str]:
    """Check (or convert) a local copy of benchmark ``name``; returns summary lines, raises naming what is missing."""
    return PREPARE[benchmark_name(name)](root, out=out, splits=splits)
