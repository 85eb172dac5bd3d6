"""Cost of scoring a seen-offset sweep (the ``--eval.calibrate-seen`` fit) per image, inference excluded: one
argmax and one confusion matrix per offset (the old loop) vs one comparison table (OffsetSweepAccumulator).

Usage: python benchmarks/bench_seen_offset.py [--classes 23] [--size 213 320] [--offsets 81] [--repeats 3]
(defaults: an MSRC-v2 image, fold with 5 unseen of 23 classes, the default 81-offset grid).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import record

from lseg_nb.engine.metrics import confusion_matrices
from lseg_nb.engine.postprocess import offset_argmax, seen_unseen_max
from lseg_nb.engine.scoring import OffsetSweepAccumulator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=23)
    ap.add_argument("--size", type=int, nargs=2, default=(213, 320))
    ap.add_argument("--offsets", type=int, default=81)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    k, (h, w) = a.classes, a.size
    logits = torch.randn(1, k, h, w, generator=g) * 3
    target = torch.randint(0, k, (1, h, w), generator=g)
    seen = torch.ones(k, dtype=torch.bool)
    seen[-5:] = False
    grid = np.linspace(0.0, 1 / 0.07, a.offsets).tolist()
    maxima = seen_unseen_max(logits, seen)
    loop, sweep = [], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        ref = [confusion_matrices(offset_argmax(maxima, o), target, k, -1, check=False).sum(0) for o in grid]
        loop.append(time.perf_counter() - t)
        t = time.perf_counter()
        acc = OffsetSweepAccumulator(k, grid, torch.device("cpu"))
        acc.add(maxima, target)
        got = acc.result()
        sweep.append(time.perf_counter() - t)
    assert all(np.array_equal(r.numpy(), c) for r, c in zip(ref, got, strict=True))
    result = {
        "classes": k,
        "size": [h, w],
        "offsets": a.offsets,
        "loop_s": min(loop),
        "sweep_s": min(sweep),
        "threads": torch.get_num_threads(),
    }
    print(result)
    record("seen_offset_sweep", [result])


if __name__ == "__main__":
    main()
