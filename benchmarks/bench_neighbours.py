"""Nearest-text search over many pixels: torch matmul + topk vs scikit-learn brute-force cosine kNN.

Usage: python benchmarks/bench_neighbours.py [--pixels 200000] [--texts 1000] [--dim 512]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import record, timeit
from sklearn.neighbors import NearestNeighbors

from lseg_nb.diagnostics.neighbours import nearest_texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pixels", type=int, default=200_000)
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    pix = F.normalize(torch.randn(args.pixels, args.dim, generator=g), dim=1)
    txt = F.normalize(torch.randn(args.texts, args.dim, generator=g), dim=1)
    t_torch = timeit(lambda: nearest_texts(pix, txt, args.k), repeat=3)
    nn_ = NearestNeighbors(n_neighbors=args.k, metric="cosine", algorithm="brute").fit(txt.numpy())
    t_sk = timeit(lambda: nn_.kneighbors(pix.numpy()), repeat=1, warmup=0)
    idx_t = nearest_texts(pix[:2000], txt, args.k)[0]
    idx_s = torch.from_numpy(nn_.kneighbors(pix[:2000].numpy())[1])
    agree = float((idx_t[:, 0] == idx_s[:, 0]).float().mean())
    record(
        "neighbours",
        [
            {
                "pixels": args.pixels,
                "texts": args.texts,
                "dim": args.dim,
                "k": args.k,
                "torch_s": round(t_torch, 3),
                "sklearn_s": round(t_sk, 3),
                "top1_agreement": agree,
            }
        ],
    )


if __name__ == "__main__":
    main()
