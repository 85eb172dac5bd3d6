"""Peak memory of calibration over many pixels: streaming per-bin totals vs keeping every pixel.

Each mode runs in its own subprocess so peak RSS is comparable. Usage:
python benchmarks/bench_calibration.py [--pixels 20000000] [--classes 20] [--chunk 1000000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch
from _common import record


def _chunks(n: int, k: int, chunk: int):
    g = torch.Generator().manual_seed(0)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        logits = torch.randn(m, k, generator=g) * 3
        yield logits.softmax(1), torch.randint(0, k, (m,), generator=g)


def run(mode: str, n: int, k: int, chunk: int) -> None:
    from lseg_nb.diagnostics.calibration import CalibrationAccumulator

    t0 = time.perf_counter()
    if mode == "stream":
        acc = CalibrationAccumulator(n_bins=15)
        for p, t in _chunks(n, k, chunk):
            acc.update(p, t)
        ece = acc.compute()
    else:  # what a keep-everything metric (e.g. torchmetrics CalibrationError) must hold: confidences + hits
        conf, hit = [], []
        for p, t in _chunks(n, k, chunk):
            c, pred = p.max(1)
            conf.append(c)
            hit.append(pred == t)
        conf, hit = torch.cat(conf), torch.cat(hit)
        ece = float(conf.mean())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak_mb:.1f} {time.perf_counter() - t0:.2f} {type(ece).__name__}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pixels", type=int, default=20_000_000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--mode")
    args = ap.parse_args()
    if args.mode:
        return run(args.mode, args.pixels, args.classes, args.chunk)
    rows = []
    for mode in ("stream", "keep_all"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--pixels",
                str(args.pixels),
                "--classes",
                str(args.classes),
                "--chunk",
                str(args.chunk),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        peak, secs, _ = out.stdout.split()
        rows.append(
            {
                "mode": mode,
                "pixels": args.pixels,
                "classes": args.classes,
                "peak_rss_mb": float(peak),
                "seconds": float(secs),
            }
        )
    record("calibration_memory", rows)


if __name__ == "__main__":
    main()
