"""Wall time of the whole offline demo (generate data, train, evaluate, report) - the `make demo` target.

Target: at most ~5 minutes on 2 CPU cores. Usage: python benchmarks/bench_demo.py [--run-dir /tmp/bench_demo]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from _common import record

from lseg_nb.apps.pipeline import demo_config, run_demo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default="/tmp/lseg_nb_bench_demo")
    ap.add_argument("--dataset", default="synthetic_textures")
    args = ap.parse_args()
    shutil.rmtree(args.run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    report = run_demo(dataclasses.replace(demo_config(args.dataset, args.run_dir), progress=False))
    wall = time.perf_counter() - t0
    m = json.loads((Path(report) / "metrics.json").read_text())
    a, u = m["all_labels"], m["unseen_only"]
    record(
        f"demo_{args.dataset}",
        [
            {
                "wall_s": round(wall, 1),
                "train_s": m["train_seconds"],
                "miou_all": a["miou"],
                "seen_miou": a["seen_miou"],
                "unseen_miou": a["unseen_miou"],
                "harmonic": a["harmonic_iou"],
                "unseen_only_miou": u["miou"] if u else None,
            }
        ],
    )


if __name__ == "__main__":
    main()
