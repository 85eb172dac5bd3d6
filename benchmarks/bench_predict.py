"""Batch prediction throughput: ``lseg-nb predict IMAGES... --out-dir`` against a plain Python loop over
``Predictor`` and against one ``lseg-nb predict --image`` process per image, side by side in one run.

Same model (``lseg_small_cpu``: ResNet-18 + DPT 64, MiniLM text encoder; random image weights: speed does not
depend on them), same labels (the 23 MSRC-v2 class names), the first ``--images`` MSRC-v2 test images (about
320x213 px). The loop is what a user writes first: ``set_image`` + ``predict_mask`` per image (labels embedded per
call, text cached by the encoder) and a mask PNG saved. The one-process-per-image figure is measured on
``--processes`` images and given per image (start-up, model load and figure drawing included).

Usage: python benchmarks/bench_predict.py [--images 60] [--processes 4] [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import record
from PIL import Image

from lseg_nb.apps.batch import predict_folder
from lseg_nb.checkpoints import save_lseg_nb
from lseg_nb.data.manifests import shared_dir
from lseg_nb.engine.predictor import Predictor
from lseg_nb.models import create_model, get_config
from lseg_nb.utils.labels import LabelSplit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()
    root = shared_dir() / "datasets" / "msrc_v2"
    ids = (root / "splits" / "test.txt").read_text().split()[: a.images]
    names = (root / "classes.txt").read_text().split("\n")
    names = [n for n in names if n.strip()]
    torch.manual_seed(0)
    model = create_model(get_config("lseg_small_cpu")).eval()
    labels = LabelSplit.from_labels(names)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "images"
        folder.mkdir()
        for i in ids:
            (folder / f"{i}.png").symlink_to(root / "images" / f"{i}.png")
        predict_folder(model, [str(folder)], labels, tmp / "warm", save=["mask"], progress=False)  # caches text
        t0 = time.perf_counter()
        s = predict_folder(model, [str(folder)], labels, tmp / "batch", save=["mask"], num_workers=a.workers,
                           progress=False)  # fmt: skip
        batch = time.perf_counter() - t0
        rows.append({"path": f"predict_folder (lseg-nb predict --out-dir), {a.workers} workers", "images": s.predicted,
                     "seconds": round(batch, 2), "images_per_s": round(s.predicted / batch, 2)})  # fmt: skip
        t0 = time.perf_counter()
        p = Predictor(model)
        (tmp / "loop").mkdir()
        for i in ids:
            p.set_image(root / "images" / f"{i}.png")
            mask = p.predict_mask(labels).numpy().astype(np.uint8)
            Image.fromarray(mask).save(tmp / "loop" / f"{i}.png")
        loop = time.perf_counter() - t0
        rows.append({"path": "Python loop over Predictor (set_image + predict_mask + PNG)", "images": len(ids),
                     "seconds": round(loop, 2), "images_per_s": round(len(ids) / loop, 2)})  # fmt: skip
        weights = tmp / "model.safetensors"
        save_lseg_nb(model, weights)
        t0 = time.perf_counter()
        for i in ids[: a.processes]:
            subprocess.run(
                [sys.executable, "-m", "lseg_nb", "predict", "--weights", str(weights), "--image",
                 str(root / "images" / f"{i}.png"), "--out", str(tmp / f"fig_{i}.png"), "--labels", *names],
                check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )  # fmt: skip
        per = (time.perf_counter() - t0) / a.processes
        rows.append({"path": "one `lseg-nb predict --image` process per image", "images": a.processes,
                     "seconds_per_image": round(per, 2), "images_per_s": round(1 / per, 3)})  # fmt: skip
        same = all(
            np.array_equal(np.array(Image.open(tmp / "batch" / "masks" / f"{i}.png")),
                           np.array(Image.open(tmp / "loop" / f"{i}.png")))
            for i in ids
        )  # fmt: skip
        rows.append({"check": "batch masks == loop masks", "equal": same})
    record("predict_batch", rows)


if __name__ == "__main__":
    main()
