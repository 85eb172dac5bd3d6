"""Cost of saving a figure: the old writer (one PNG at 110 dpi) against the publication export
(``atomic_save_figure``: PNG at 254 dpi + PDF + SVG), on the 4-row example grid of the first MSRC-v2 test images
(~320x213 px), best of ``--repeat`` runs; also each format alone.

Usage: python benchmarks/bench_figures.py [--rows 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import record
from PIL import Image

from lseg_nb.data.manifests import shared_dir
from lseg_nb.utils.io import FIGURE_DPI, atomic_save_figure
from lseg_nb.viz.segmentation import plot_examples


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    root = shared_dir() / "datasets" / "msrc_v2"
    names = (root / "classes.txt").read_text().split()
    examples = []
    for i in (root / "splits" / "test.txt").read_text().split()[: a.rows]:
        image = np.array(Image.open(root / "images" / f"{i}.png").convert("RGB"))
        label = np.array(Image.open(root / "labels" / f"{i}.png")).astype(np.int64)
        examples.append((image, np.where(label == 255, 0, label), label))
    fig = plot_examples(examples, names)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        old = _best(lambda: fig.savefig(out / "old.png", dpi=110, bbox_inches="tight"), a.repeat)
        rows.append(
            {
                "writer": "old: PNG 110 dpi",
                "seconds": round(old, 2),
                "kib": (out / "old.png").stat().st_size // 1024,
            }
        )
        new = _best(lambda: atomic_save_figure(fig, out / "new.png"), a.repeat)
        kib = sum((out / f"new.{x}").stat().st_size for x in ("png", "pdf", "svg")) // 1024
        rows.append(
            {"writer": f"new: PNG {FIGURE_DPI} dpi + PDF + SVG", "seconds": round(new, 2), "kib": kib}
        )
        for fmt in ("png", "pdf", "svg"):
            sec = _best(
                lambda f=fmt: fig.savefig(out / f"x.{f}", dpi=FIGURE_DPI, bbox_inches="tight"), a.repeat
            )
            rows.append(
                {
                    "writer": f"{fmt} alone",
                    "seconds": round(sec, 2),
                    "kib": (out / f"x.{fmt}").stat().st_size // 1024,
                }
            )
    record("figures_save", rows)


if __name__ == "__main__":
    main()
