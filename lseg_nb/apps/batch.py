"""``lseg-nb predict IMAGES... --out-dir OUT``: masks, overlays, probabilities and features for many images.

Output folder (every file written atomically; ``<key>`` is the image's path relative to the deepest folder holding
all inputs, without its suffix)::

    masks/<key>.png        class index per pixel, palette PNG (uint8; 16-bit greyscale with more than 256
                           classes); index i = class i of labels.json; same size as the image
    overlays/<key>.png     the image with the mask blended over it in the classes' colours
    probs/<key>.npy        float16 (K, H, W) class probabilities (softmax over the classes of the class logits,
                           or the protocol's reference probabilities when it has a logit scale or thresholds)
    features/<key>.npy     float16 (D, h, w) unit pixel embeddings (``lseg_nb.engine.features`` recipe, at its
                           resolution or --feature-size); features/features.json describes them (model, recipe,
                           normalisation, shapes) and stores the label texts' embeddings
    labels.json            index -> class (first name, all names, colour)
    predict.json           what produced the folder: model (fingerprint, weights, sha256 of a weights file),
                           protocol, labels, outputs asked for, lseg_nb version
    predictions.jsonl      one line per predicted image: key, source path, size, class shares, seconds
    failures.txt           images that could not be read, with the reason (only when there were some)

A rerun skips images whose asked-for outputs all exist (``overwrite`` redoes them); a folder written with other
labels, another model or protocol is refused unless ``overwrite`` is given, so outputs never mix. Reading
images is spread over DataLoader workers, writing runs in a background thread, and at most a few images are held
in memory at a time.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

import lseg_nb
from lseg_nb.config import EvalConfig, to_dict
from lseg_nb.engine.batch import ImagePrediction, collect_images, predict_images
from lseg_nb.engine.feature_store import write_feature_manifest
from lseg_nb.engine.features import FeatureRecipe, feature_recipe
from lseg_nb.engine.provenance import file_sha256, model_fingerprint
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import atomic_save_npy, atomic_save_png, atomic_write_text, check_output_dir, inside
from lseg_nb.utils.labels import LabelSplit
from lseg_nb.viz.colours import hex_colour, label_colours, label_palette
from lseg_nb.viz.segmentation import overlay

SAVES = ("mask", "overlay", "probs", "features")
_FOLDER = {"mask": ("masks", ".png"), "overlay": ("overlays", ".png"), "probs": ("probs", ".npy"),
           "features": ("features", ".npy")}  # fmt: skip
_PENDING = 4  # images written in the background at most (bounded memory)
_MIN_FREE = 64 << 20  # refuse a (nearly) full output folder before any work


@dataclass
class BatchSummary:
    """What a batch prediction did: images predicted, skipped (already complete), failed (key, reason)."""

    out_dir: Path
    predicted: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.predicted / self.seconds if self.seconds > 0 else 0.0
        bad = f", {len(self.failed)} failed (see {self.out_dir / 'failures.txt'})" if self.failed else ""
        return (
            f"{self.predicted} images predicted ({rate:.2f}/s), {self.skipped} already complete{bad}: "
            f"{self.out_dir}"
        )


def output_file(out_dir: Path, kind: str, key: str) -> Path:
    """The file of output ``kind`` (mask, overlay, probs, features) for image ``key``, confined to ``out_dir``."""
    folder, suffix = _FOLDER[kind]
    stem = key.rsplit(".", 1)[0] if "." in Path(key).name else key
    return inside(out_dir, folder, *f"{stem}{suffix}".split("/"), what="image key")


def _check_saves(save: Sequence[str]) -> tuple[str, ...]:
    save = tuple(dict.fromkeys(s.strip() for part in save for s in part.split(",") if s.strip()))
    bad = [s for s in save if s not in SAVES]
    if bad or not save:
        raise InputError(f"--save: choose from {', '.join(SAVES)} (comma-separated), got {bad or 'nothing'}")
    return save


def _identity(
    model: nn.Module,
    weights: str,
    labels: LabelSplit,
    protocol: EvalConfig,
    save: tuple[str, ...],
    recipe: FeatureRecipe,
    size: tuple[int, int] | None,
) -> dict[str, Any]:
    ident = {
        "model": model_fingerprint(model),
        "weights": weights,
        "protocol": to_dict(protocol),
        "labels": [list(n) for n in labels.names],
        "background": labels.background,
        "save": list(save),
    }
    if "features" in save:
        ident["feature_recipe"], ident["feature_size"] = recipe.name, list(size) if size else None
    return ident


def _check_folder(out_dir: Path, ident: dict[str, Any], overwrite: bool) -> None:
    path = out_dir / "predict.json"
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}
    keys = ("model", "weights", "protocol", "labels", "background", "feature_recipe", "feature_size")
    changed = [k for k in keys if old.get("identity", {}).get(k) != ident.get(k)]
    if changed:
        raise InputError(
            f"{out_dir} holds predictions of another {', '.join(changed)}: choose another --out-dir or pass "
            "--overwrite to redo every image"
        )


def _write(out_dir: Path, p: ImagePrediction, save: tuple[str, ...], labels: LabelSplit, colours: np.ndarray,
           log: Any) -> dict[str, list[int]]:  # fmt: skip
    """Write one image's outputs (background thread); returns feature file shapes for the manifest."""
    shapes: dict[str, list[int]] = {}
    if "mask" in save:
        mask = p.mask.astype(np.uint8 if len(colours) <= 256 else np.uint16)
        atomic_save_png(mask, output_file(out_dir, "mask", p.key), colours if len(colours) <= 256 else None)
    if "overlay" in save:
        blend = overlay(p.image, p.mask, colours)
        atomic_save_png(blend, output_file(out_dir, "overlay", p.key))
    if "probs" in save:
        atomic_save_npy(p.probs.astype(np.float16), output_file(out_dir, "probs", p.key))
    if "features" in save:
        f = output_file(out_dir, "features", p.key)
        atomic_save_npy(p.features.astype(np.float16), f)
        shapes[f.relative_to(out_dir / "features").as_posix()] = list(p.features.shape)
    counts = np.bincount(p.mask.ravel(), minlength=labels.num_classes)
    shares = {labels.class_names[i]: round(float(c) / p.mask.size, 6) for i, c in enumerate(counts) if c}
    row = {
        "key": p.key,
        "path": str(p.path),
        "size": list(p.size),
        "shares": shares,
        "seconds": round(p.seconds, 4),
    }
    log.write(json.dumps(row) + "\n")
    log.flush()
    return shapes


def predict_folder(
    model: nn.Module,
    inputs: Sequence[str],
    labels: LabelSplit,
    out_dir: str | Path,
    protocol: EvalConfig | None = None,
    save: Sequence[str] = ("mask",),
    overwrite: bool = False,
    feature_size: tuple[int, int] | None = None,
    recipe: str | FeatureRecipe = "native",
    weights: str = "",
    num_workers: int = 0,
    batch_size: int = 1,
    progress: bool = True,
) -> BatchSummary:
    """Predict every image of ``inputs`` and write the asked-for outputs under ``out_dir`` (module docstring).

    Args:
        model: any lseg_nb model (``lseg_nb.load_model``).
        inputs: image files, folders, glob patterns and ``@list.txt`` files.
        labels: the classes (``LabelSplit.from_labels("sky, sofa|couch")``).
        out_dir: the output folder (created; refused when it is a file or not writable, before any work).
        protocol: inference and decision settings (default ``EvalConfig()``).
        save: any of ``mask``, ``overlay``, ``probs``, ``features``.
        overwrite: redo images whose outputs exist, and allow a folder written with other settings.
        feature_size: ``(h, w)`` for the features (default: the recipe's resolution).
        recipe: the feature recipe (``native``, ``openscene``, ``vlmaps``).
        weights: how the model was given (recorded in ``predict.json``).
        num_workers: DataLoader workers decoding images.
        batch_size: consecutive images of the same size run through the network together (GPUs).
        progress: show a progress bar (images/s, ETA).
    """
    save, protocol, recipe = _check_saves(save), protocol or EvalConfig(), feature_recipe(recipe)
    images = collect_images(inputs)
    out = check_output_dir(out_dir, "--out-dir")
    free = shutil.disk_usage(out).free
    if free < _MIN_FREE:
        raise OSError(
            errno.ENOSPC, f"--out-dir {out} has {free >> 20} MiB free: at least {_MIN_FREE >> 20} MiB needed"
        )
    ident = _identity(model, weights, labels, protocol, save, recipe, feature_size)
    _check_folder(out, ident, overwrite)
    meta = {"identity": ident, "lseg_nb_version": lseg_nb.__version__, "images": len(images)}
    if weights and Path(weights).is_file():
        meta["weights_sha256"] = file_sha256(weights)
    atomic_write_text(out / "predict.json", json.dumps(meta, indent=1))
    colours = label_palette(labels.class_names)
    classes = [
        {"index": i, "name": labels.class_names[i], "names": list(n), "colour": hex_colour(c)}
        for i, (n, c) in enumerate(zip(labels.names, label_colours(labels.class_names), strict=True))
    ]
    atomic_write_text(
        out / "labels.json", json.dumps({"classes": classes, "background": labels.background}, indent=1)
    )
    todo = [(p, k) for p, k in images if overwrite or not all(output_file(out, s, k).is_file() for s in save)]
    summary = BatchSummary(out, skipped=len(images) - len(todo))
    shapes: dict[str, list[int]] = {}
    start = time.perf_counter()
    results = predict_images(
        model, todo, labels, protocol, "probs" in save, "features" in save, recipe, feature_size, num_workers,
        batch_size,
    )  # fmt: skip
    bar = tqdm(results, total=len(todo), unit="img", disable=not progress, desc="predict")
    pending: list[Future] = []
    with open(out / "predictions.jsonl", "a", encoding="utf-8") as log, ThreadPoolExecutor(1) as writer:
        try:
            for p in bar:
                if p.error is not None:
                    summary.failed.append((p.key, p.error))
                    continue
                pending.append(writer.submit(_write, out, p, save, labels, colours, log))
                while len(pending) >= _PENDING:
                    shapes.update(pending.pop(0).result())
                summary.predicted += 1
            for f in pending:
                shapes.update(f.result())
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            raise OSError(
                errno.ENOSPC,
                f"no space left in {out} after {summary.predicted} images: free some space and rerun the same "
                "command (complete images are skipped; every file is written whole or not at all)",
            ) from None
    summary.seconds = time.perf_counter() - start
    if "features" in save:
        folder = out / "features"
        old = _old_shapes(folder) if not overwrite else {}
        write_feature_manifest(folder, model, recipe, feature_size, {**old, **shapes}, list(labels.texts),
                               extra={"weights": weights})  # fmt: skip
    failures = out / "failures.txt"
    if summary.failed:
        atomic_write_text(failures, "".join(f"{k}\t{why}\n" for k, why in summary.failed))
    elif failures.is_file():
        os.remove(failures)
    return summary


def _old_shapes(folder: Path) -> dict[str, list[int]]:
    try:
        return dict(json.loads((folder / "features.json").read_text()).get("files", {}))
    except (OSError, ValueError):
        return {}
