"""Training throughput of the small CPU config (the demo's model) at several crop sizes.

Target: the demo's 250 steps at batch 8 must fit in ~4 minutes on 2 CPU cores (<~1 s/step).
Usage: python benchmarks/bench_train_step.py [--crops 64 96 128] [--batch 8]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import record, timeit

from lseg_nb.models import RandomTextEncoder, create_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crops", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--features", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    te = RandomTextEncoder(384)
    model = create_model("lseg_small_cpu", text_encoder=te, features=args.features).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    text = te.encode([str(i) for i in range(12)])
    rows = []
    for crop in args.crops:
        x = torch.randn(args.batch, 3, crop, crop)
        y = torch.randint(0, 12, (args.batch, crop, crop))

        def step(x=x, y=y):
            opt.zero_grad()
            F.cross_entropy(model(x, text), y).backward()
            opt.step()

        s = timeit(step, repeat=5, warmup=2)
        rows.append(
            {
                "crop": crop,
                "batch": args.batch,
                "features": args.features,
                "s_per_step": round(s, 3),
                "images_per_s": round(args.batch / s, 1),
            }
        )
    record("train_step", rows)


if __name__ == "__main__":
    main()
