"""Training throughput: the raw step of the small CPU config at several crop sizes, and the Trainer's step with
tensors already on the device ("model only") next to the same step fed by the real data pipeline ("end to end").

Targets: the demo's 250 steps at batch 8 must fit in ~4 minutes on 2 CPU cores (<~1 s/step); on a GPU the paper
recipe end to end must reach >= 90 % of the model-only rate (DataLoader workers, pinned memory, no host syncs).

Configs of the pipeline comparison: ``cpu`` = the offline demo (lseg_small_cpu, 96 px crops, batch 8, synthetic
96 px images); ``paper`` = ViT-L/16 + DPT 256 + CLIP ViT-B/32 text tower (random weights), 480 crops from 512 px
synthetic images (base size 520, scales 0.5-2.0), batch 6, bf16 autocast - the issue's setting, for a GPU.

Usage: python benchmarks/bench_train_step.py [--crops 64 96 128] [--batch 8]
       python benchmarks/bench_train_step.py --pipeline-only --device cuda --config paper
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import record, timeit

from lseg_nb.apps.pipeline import demo_config
from lseg_nb.config import DataConfig, TextEncoderConfig, TrainConfig
from lseg_nb.data.loading import resolve_workers
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.engine.train import Trainer
from lseg_nb.models import RandomTextEncoder, create_model, get_config


def crop_sweep(args: argparse.Namespace) -> None:
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


def pipeline_config(name: str, device: str, work: Path) -> TrainConfig:
    if name == "cpu":
        return dataclasses.replace(demo_config(run_dir=str(work / "run")), device=device, progress=False)
    root = generate_synthetic(work / "synth512", n_train=48, n_val=2, n_test=2, size=512)
    model = get_config(
        "lseg_vitl16_384",
        backbone_pretrained=False,
        text=TextEncoderConfig(kind="open_clip", name="ViT-B-32", pretrained=None, dim=512),
    )
    data = DataConfig(data_root=str(root), base_size=520, scale_range=(0.5, 2.0))
    return TrainConfig(
        model=model,
        data=data,
        run_dir=str(work / "run"),
        batch_size=6,
        amp="bf16",
        device=device,
        progress=False,
    )


def _rate(trainer: Trainer, batches, steps: int, warmup: int) -> float:
    """Images per second of ``steps`` optimiser steps (after ``warmup``), reading the loss once at the end."""
    for _ in range(warmup):
        trainer._step(batches)
    trainer._step(batches).item()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = trainer._step(batches)
    loss.item()  # waits for the device
    return steps * trainer.cfg.batch_size * trainer.cfg.grad_accum / (time.perf_counter() - t0)


def pipeline(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pipeline_config(args.config, args.device, Path(tmp))
        trainer = Trainer(cfg)
        loader = trainer._batches()
        one = [t.to(trainer.device) for t in next(loader)]
        model_only = _rate(trainer, itertools.repeat(one), args.steps, args.warmup)
        end_to_end = _rate(trainer, loader, args.steps, args.warmup)
        workers = resolve_workers(cfg.data.num_workers, trainer.device)
    m = cfg.model
    row = {
        "config": args.config,
        "backbone": m.backbone,
        "crop": m.crop_size,
        "batch": cfg.batch_size,
        "amp": cfg.amp,
        "device": args.device,
        "num_workers": workers,
        "steps": args.steps,
        "model_only_images_per_s": round(model_only, 2),
        "end_to_end_images_per_s": round(end_to_end, 2),
        "end_to_end_fraction": round(end_to_end / model_only, 3),
    }
    record(f"train_pipeline_{args.config}_{torch.device(args.device).type}", [row])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crops", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--pipeline-only", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", choices=["cpu", "paper"], default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    if not args.pipeline_only:
        crop_sweep(args)
    pipeline(args)


if __name__ == "__main__":
    main()
