"""Text-encoder ablation on synthetic_textures fold 0 (issue 4), fully offline, small CPU model.

1. Retrain the same recipe (``demo_config`` of the synthetic set: lseg_small_cpu, 96 px crops, batch 8, AdamW
   2e-3 cosine, seed 0) once per text encoder: MiniLM, random (384-d) and one-hot (open_clip ViT-B-32 only with
   ``--clip-pretrained``; otherwise recorded as skipped).
2. Swap variant: freeze the MiniLM-trained image encoder + decoder and swap the text encoder (MiniLM itself as
   the re-fit control, random 384-d, one-hot), re-fitting only ``head.proj`` on the seen classes.

Writes ``ablation.json``, ``swap.json``, ``ablation.png``, ``swap.png`` and ``results.md`` to ``--out``; finished
runs in ``--out`` are reused. Usage::

    .venv/bin/python benchmarks/ablation_text_encoders.py --steps 100 --head-steps 100 --out runs/ablation_text_encoders
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch

from lseg_nb.apps.pipeline import demo_config
from lseg_nb.config import MINILM
from lseg_nb.data.synthetic import CLASS_NAMES
from lseg_nb.diagnostics import (
    AblationReport,
    default_ablation_encoders,
    run_swap_ablation,
    run_text_encoder_ablation,
)
from lseg_nb.utils.io import atomic_write_text
from lseg_nb.viz.ablation import plot_ablation


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def markdown_table(report: AblationReport) -> str:
    """One line per row: seen / unseen / harmonic (all labels) and unseen-only mIoU, in %."""
    lines = [
        "| text encoder | variant | dim | steps | seen mIoU | unseen mIoU | harmonic | unseen-only mIoU (paper) | time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        if r.status != "ok":
            lines.append(f"| {r.name} | {r.variant} | | | skipped: {r.reason} | | | | |")
            continue
        seconds = "reused" if r.reused else (r.seconds if r.seconds is not None else "")
        lines.append(
            f"| {r.name} | {r.variant} | {r.text_dim} | {r.steps} | {_pct(r.seen_miou)} | {_pct(r.unseen_miou)} | "
            f"{_pct(r.harmonic_iou)} | {_pct(r.unseen_only_miou)} | {seconds} |"
        )
    return "\n".join(lines)


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), {gpu}, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; 1-min load average at start {load:.1f} "
        "(machine shared with other processes, so times are only indicative)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/ablation_text_encoders")
    ap.add_argument("--steps", type=int, default=100, help="training steps per text encoder")
    ap.add_argument("--head-steps", type=int, default=100, help="head.proj re-fit steps of the swap variant")
    ap.add_argument("--head-lr", type=float, default=1e-2)
    ap.add_argument("--max-eval-images", type=int, default=None)
    ap.add_argument(
        "--clip-pretrained", default=None, help="open_clip tag or local weights file for ViT-B-32"
    )
    ap.add_argument("--no-swap", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    started = time.strftime("%Y-%m-%d %H:%M")
    info = machine()
    base = demo_config(steps=args.steps)
    encoders = default_ablation_encoders(CLASS_NAMES, clip_pretrained=args.clip_pretrained)
    t0 = time.perf_counter()
    report = run_text_encoder_ablation(
        base, encoders, out, max_eval_images=args.max_eval_images, progress=not args.no_progress
    )
    plot_ablation(report).savefig(out / "ablation.png", dpi=110, bbox_inches="tight")
    parts = [
        f"Date: {started}. Machine: {info}.",
        f"Retrain ablation: synthetic_textures fold 0 (unseen: {', '.join(report.unseen_classes)}), test split, "
        f"lseg_small_cpu, {args.steps} steps x batch {base.batch_size}, 96 px crops, AdamW lr {base.lr} cosine, "
        f"seed {base.seed}; wall time {time.perf_counter() - t0:.0f} s.",
        "",
        markdown_table(report),
    ]
    if not args.no_swap:
        t1 = time.perf_counter()
        swap_encoders = {"minilm": MINILM, "random": encoders["random"], "one_hot": encoders["one_hot"]}
        swap = run_swap_ablation(
            out / "minilm",
            swap_encoders,
            out / "swap.json",
            reference_name="minilm",
            head_steps=args.head_steps,
            head_lr=args.head_lr,
            max_eval_images=args.max_eval_images,
            progress=not args.no_progress,
        )
        plot_ablation(swap).savefig(out / "swap.png", dpi=110, bbox_inches="tight")
        parts += [
            "",
            f"Swap variant: image encoder + decoder of the MiniLM run frozen; head.proj re-fitted for "
            f"{args.head_steps} steps (AdamW lr {args.head_lr}, cosine, batch {base.batch_size}) on the seen "
            f"classes; wall time {time.perf_counter() - t1:.0f} s.",
            "",
            markdown_table(swap),
        ]
    text = "\n".join(parts) + "\n"
    atomic_write_text(out / "results.md", text)
    print(text)


if __name__ == "__main__":
    main()
