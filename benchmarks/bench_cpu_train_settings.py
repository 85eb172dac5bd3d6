"""CPU training settings that change speed and nothing else: bf16 autocast on or off, and torch's intra-op thread
count (the default, one per core, vs one) - the two hints ``lseg_nb.utils.device.cpu_training_hints`` prints.

The Trainer's own step (forward, backward, AdamW) of the offline demo config (lseg_small_cpu, 96 px crops, batch
8) on one random batch already in memory, so data loading does not enter; one Trainer for all settings; the median of ``--steps`` steps after
``--warmup``. The 1-minute load average before and after is recorded with each row: on a shared machine the thread
comparison is only meaningful next to it. The CPU's native-bf16 support (AVX512-BF16/AMX) is recorded too.

Usage: python benchmarks/bench_cpu_train_settings.py [--steps 5] [--warmup 2] [--amp none bf16] [--threads 2 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import record

from lseg_nb.apps.pipeline import demo_config
from lseg_nb.engine.train import Trainer
from lseg_nb.utils.device import cpu_has_native_bf16


def step_seconds(trainer: Trainer, amp: str, threads: int, steps: int, warmup: int) -> list[float]:
    """Wall seconds of each of ``steps`` optimiser steps after ``warmup``, under ``amp`` with ``threads``."""
    torch.set_num_threads(threads)
    trainer.cfg = dataclasses.replace(trainer.cfg, amp=amp)
    g = torch.Generator().manual_seed(0)
    b, crop = trainer.cfg.batch_size, trainer.cfg.model.crop_size
    batch = (
        torch.randn(b, 3, crop, crop, generator=g),
        torch.randint(0, len(trainer.labels.seen), (b, crop, crop), generator=g),
    )
    batches = itertools.repeat(batch)
    for _ in range(warmup):
        trainer._step(batches)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer._step(batches).item()
        times.append(time.perf_counter() - t0)
    print(f"amp {amp}, {threads} threads: {[round(t, 3) for t in times]}", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--amp", nargs="+", default=["none", "bf16"], choices=["none", "bf16"])
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="default: torch's default, then 1")
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    settings = [(a, t) for t in args.threads or [default_threads, 1] for a in args.amp]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(demo_config(run_dir=str(Path(tmp) / "run")), device="cpu", progress=False)
        trainer = Trainer(cfg)  # one model for every setting: only amp and the thread count change
        for amp, threads in settings:
            load_before = os.getloadavg()[0]
            times = step_seconds(trainer, amp, threads, args.steps, args.warmup)
            rows.append(
                {
                    "amp": amp,
                    "threads": threads,
                    "s_per_step_median": round(statistics.median(times), 3),
                    "s_per_step_min": round(min(times), 3),
                    "steps": args.steps,
                    "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2),
                    "native_bf16": cpu_has_native_bf16(),
                }
            )
    torch.set_num_threads(default_threads)
    record("cpu_train_settings", rows)


if __name__ == "__main__":
    main()
