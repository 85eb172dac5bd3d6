"""Per-step and per-image costs on real-resolution images, so a user can plan a run before starting it.

Uses the MSRC-v2 demo recipe (``demo_msrc_v2``: lseg_small_cpu = ResNet-18 from scratch + DPT decoder width 64,
MiniLM text, 128 px crops, batch 8, fold 0) on the shared MSRC-v2 photographs (about 320x213 px):

* a training step: data loading + augmentation + forward + backward + AdamW, median of ``--steps`` steps after
  2 warm-up steps (``Trainer.train_step``, the real data path);
* evaluation per test image (``run_dense``, image loading included) with each protocol: single pass,
  sliding 128 px windows (stride 2/3), multi-scale relative to the image (6 scales, flip, windows) and the
  official protocol (long side 520 x scale, 6 scales, flip, windows);
* one 512x683 image (an MSRC photograph resized) with the same protocols (``predict_logits`` only).

Wall and process CPU seconds are both recorded, with the 1-minute load average before and after each row: on a
shared machine two intra-op threads can be many times slower than one (threads wait for each other at every
operator while the other core runs someone else's work), so run it with ``--threads 1`` and ``--threads 2``.
Usage: LSEG_NB_SHARED=../shared python benchmarks/bench_costs.py --threads 2 [--steps 8] [--images 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from _common import record
from PIL import Image

from lseg_nb.config import OFFICIAL_EVAL, EvalConfig, get_recipe
from lseg_nb.data.transforms import eval_transform
from lseg_nb.engine.dense import run_dense
from lseg_nb.engine.evaluate import eval_data
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.train import Trainer, quiet_known_warnings

PROTOCOLS = {
    "single": EvalConfig(),
    "sliding": EvalConfig(mode="sliding"),
    "multiscale_relative": EvalConfig(mode="multiscale"),
    "official_multiscale": OFFICIAL_EVAL,
}


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float], n: int = 1) -> dict[str, float]:
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    return {"wall_s": round(wall / n, 3), "cpu_s": round(cpu / n, 3)}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _row(rows: list[dict], row: dict) -> None:
    rows.append(row)
    print(
        f"{row['what']}: {row['wall_s']} s wall, load {row['load_1min_before']}", file=sys.stderr, flush=True
    )


def train_step_cost(trainer: Trainer, steps: int) -> dict:
    """Median wall / CPU seconds of one optimiser step on the recipe's real data path."""
    trainer.prepare_run_dir()
    batches = trainer._batches()
    with quiet_known_warnings():
        for _ in range(2):
            trainer.train_step(batches)
        walls, cpus = [], []
        for _ in range(steps):
            start = _clock()
            trainer.train_step(batches)
            t = _since(start)
            walls.append(t["wall_s"])
            cpus.append(t["cpu_s"])
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument(
        "--images", type=int, default=6, help="test images per protocol (official: --official-images)"
    )
    ap.add_argument("--official-images", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = get_recipe("demo_msrc_v2")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(recipe, run_dir=f"{tmp}/run", steps=args.steps + 2, progress=False)
        trainer = Trainer(cfg)
        load = _load()
        cost = train_step_cost(trainer, args.steps)
        _row(
            rows,
            {
                "what": f"training step (batch {cfg.batch_size}, crop {cfg.model.crop_size}, MSRC-v2 train split)",
                **cost,
                "images_per_s_wall": round(cfg.batch_size / cost["wall_s"], 2),
                "load_1min_before": load,
                "load_1min_after": _load(),
            },
        )
        model = trainer.model.eval()
        for name, protocol in PROTOCOLS.items():
            n = args.official_images if name == "official_multiscale" else args.images
            protocol = dataclasses.replace(protocol, bootstrap=0)
            data = eval_data(cfg.data, "test", model, exp=trainer.exp)
            run_dense(model, dataclasses.replace(data, max_images=1), protocol, progress=False)  # warm-up
            load, start = _load(), _clock()
            run_dense(model, dataclasses.replace(data, max_images=n), protocol, progress=False)
            _row(
                rows,
                {
                    "what": f"evaluation per MSRC-v2 test image (~320x213), {protocol.name}, window "
                    f"{model.config.crop_size}, {n} images",
                    **_since(start, n),
                    "load_1min_before": load,
                    "load_1min_after": _load(),
                },
            )
        photo = (
            trainer.exp.dataset("test", model.config, cfg.data)
            .raw_image(0)
            .resize((683, 512), Image.BILINEAR)
        )
        image, _ = eval_transform(model.config.mean, model.config.std)(photo, np.zeros((512, 683), np.int64))
        text = model.encode_text(list(trainer.labels.class_names))
        predict_logits(model, image[None], text)  # warm-up at this size
        for protocol in PROTOCOLS.values():
            load, start = _load(), _clock()
            predict_logits(model, image[None], text, protocol)
            _row(
                rows,
                {
                    "what": f"one 512x683 image, {protocol.name}, window {model.config.crop_size}",
                    **_since(start),
                    "load_1min_before": load,
                    "load_1min_after": _load(),
                },
            )
    record(f"costs_threads{torch.get_num_threads()}", rows)


if __name__ == "__main__":
    main()
