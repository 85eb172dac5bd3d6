"""The offline real-data zero-shot experiment on MSRC-v2 (issue 8): what LSeg-style training does and does not do.

Every run uses the `demo_msrc_v2` recipe (small CPU model, MiniLM text encoder) and changes one thing:

* ``minilm_f{0..3}``: the four consecutive-class folds (PASCAL-5i style, fold i holds out classes 6i..6i+5).
* ``minilm_nb``: the ``neighbours`` fold (manifest fold 4), designed so every unseen class keeps its closest seen
  class (sheep<-cow, bicycle<-car, flower<-grass, face<-body, cat<-dog, boat<-water).
* ``random_*``: random text embeddings (384-d Gaussian per label: no semantics, so transfer must vanish).
* ``onehot_nb``: one-hot label embeddings (orthogonal labels: no semantics either).
* ``closed_nb``: the closed-set baseline on the neighbours fold's seen classes: same image encoder, decoder,
  head, loss and temperature, but a learned label table instead of text (``text.kind='learned'``).
* ``minilm_nb_s1`` / ``minilm_f0_s1`` / ``random_nb_s1``, ``minilm_nb_s2`` / ``random_nb_s2``: second and third seeds
  (model init, data order, augmentation;
  for ``random`` also the label vectors).

Per run, on the test split (238 images, single pass at full resolution): seen/unseen mIoU and harmonic mean with
all 23 labels competing (generalised), the same after seen-class bias calibration (a seen-logit offset fitted on
the validation split, :mod:`lseg_nb.engine.seen_bias`), unseen-only mIoU / pixel accuracy (ZS3Net/SPNet-style:
only unseen labels, only unseen pixels) beside its chance baselines, closed-set seen-only mIoU (only seen labels,
only seen pixels: the fixed-label comparison with ``closed_nb``), per-class IoU and, for each unseen class, the
seen class that takes most of its pixels.

Usage (each run took 8-16 min here, one thread, two runs side by side on 2 cores; results are cached per run,
so the script can be stopped and rerun):
    LSEG_NB_SHARED=../shared python benchmarks/msrc_zero_shot.py --runs minilm_nb random_nb ...
    python benchmarks/msrc_zero_shot.py --report        # markdown tables from the cached results
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine
from torch.utils.data import Dataset

from lseg_nb.apps.pipeline import demo_config, train_run
from lseg_nb.config import EvalConfig, TextEncoderConfig, TrainConfig, get_recipe, load_config
from lseg_nb.data.experiment import make_experiment
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.engine.runs import MetricsLog, load_model
from lseg_nb.engine.seen_bias import fit_seen_offset
from lseg_nb.utils.io import atomic_write_text
from lseg_nb.utils.labels import LabelSplit

RESULTS = Path(__file__).resolve().parent / "results" / "msrc_zero_shot"
FOLDS = {"f0": 0, "f1": 1, "f2": 2, "f3": 3, "nb": 4}


def run_names() -> list[str]:
    """Every run of the experiment, in the order they are best run."""
    return [
        "minilm_nb", "random_nb", "onehot_nb", "closed_nb", "minilm_nb_s1",
        "minilm_f0", "random_f0", "minilm_f1", "random_f1", "minilm_f2", "random_f2", "minilm_f3", "random_f3",
        "minilm_f0_s1", "random_nb_s1", "minilm_nb_s2", "random_nb_s2",
    ]  # fmt: skip


def run_config(name: str, runs_dir: Path) -> TrainConfig:
    """The recipe of one named run (see the module docstring)."""
    parts = name.split("_")
    kind, fold_tag = parts[0], parts[1]
    seed = int(parts[2][1:]) if len(parts) > 2 else 0
    cfg = demo_config("msrc_v2", str(runs_dir / name), fold=FOLDS[fold_tag])
    cfg = dataclasses.replace(cfg, seed=seed, progress=False)
    dim = get_recipe("demo_msrc_v2").model.text  # the MiniLM config (384-d)
    if kind == "minilm":
        text = dim
    elif kind == "random":
        text = TextEncoderConfig(kind="random", dim=384, seed=seed)
    elif kind == "onehot":
        text = TextEncoderConfig(
            kind="one_hot", vocabulary=tuple(make_experiment(cfg.data).labels.class_names)
        )
    elif kind == "closed":
        seen = tuple(make_experiment(cfg.data).labels.seen_names)
        text = TextEncoderConfig(kind="learned", vocabulary=seen, dim=384, seed=seed)
    else:
        raise ValueError(f"unknown run {name!r}; runs: {run_names()}")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text=text))


class SeenOnly(Dataset):
    """Test items with labels remapped to positions in the seen list; unseen classes and void -> 255."""

    def __init__(self, dataset: Dataset, lut: torch.Tensor) -> None:
        self.dataset, self.lut = dataset, lut

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image, label, *rest = self.dataset[i]
        return (image, self.lut[torch.as_tensor(label).long()], *rest)


def _pct(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(100 * x, 1)


def score(name: str, cfg: TrainConfig, train_seconds: float) -> dict:
    """Evaluate a trained run folder (see the module docstring for what is measured)."""
    model = load_model(cfg.run_dir)
    exp = make_experiment(cfg.data)
    lab = exp.labels
    names = list(lab.class_names)
    test = exp.dataset("test", model.config, cfg.data)
    out: dict = {
        "run": name,
        "fold": exp.manifest.zero_shot_folds[cfg.data.fold].name,
        "text": cfg.model.text.kind,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "train_seconds": round(train_seconds, 1),
        "seen_classes": lab.seen_names,
        "unseen_classes": lab.unseen_names,
    }
    protocol = EvalConfig(bootstrap=0)  # the single pass of the run's recipe
    closed_labels = LabelSplit.from_labels(list(lab.seen_names))
    closed = run_dense(model, EvalData(SeenOnly(test, lab.train_lut()), closed_labels), protocol, 0, False)
    out["closed_set_seen"] = {
        "miou": _pct(closed.all_labels.miou),
        "pixel_acc": _pct(closed.all_labels.pixel_acc),
    }
    if cfg.model.text.kind == "learned":
        return out
    seen, unseen = list(lab.seen), list(lab.unseen)
    # the offset is fitted on the validation split; one test pass scores with and without it
    val = EvalData(exp.dataset("val", model.config, cfg.data), lab)
    fit = fit_seen_offset(model, val, protocol, progress=False)
    result = run_dense(model, EvalData(test, lab), protocol, 0, False, seen_offset=fit.offset)
    for key, a in (("generalised", result.all_labels), ("generalised_calibrated", result.calibrated)):
        out[key] = {
            "miou": _pct(a.miou),
            "seen_miou": _pct(a.seen_miou),
            "unseen_miou": _pct(a.unseen_miou),
            "harmonic": _pct(a.harmonic_iou),
        }
    out["calibration"] = {
        "offset": round(fit.offset, 3),
        "val_harmonic": _pct(float(np.nanmax(fit.harmonic))),
    }
    u, b = result.unseen_only, result.settings["unseen_only"].baseline
    out["unseen_only"] = {
        "miou": _pct(u.miou),
        "pixel_acc": _pct(u.pixel_acc),
        "chance_uniform_miou": _pct(b.uniform_miou),
        "chance_uniform_pixel_acc": _pct(b.uniform_pixel_acc),
        "chance_majority_pixel_acc": _pct(b.majority_pixel_acc),
        "majority_class": b.majority_class,
        "per_class_iou": {n: _pct(v) for n, v in zip(u.class_names, u.per_class_iou)},
    }
    out["generalised_per_class_iou"] = {n: _pct(v) for n, v in zip(names, result.all_labels.per_class_iou)}
    cm = result.confusion
    taken = {}
    for c in unseen:
        row = cm[c]
        best = max(seen, key=lambda s: row[s])
        taken[names[c]] = {"seen_class": names[best], "share": _pct(row[best] / max(1, row.sum()))}
    out["unseen_pixels_taken_by"] = taken
    return out


def _finished_seconds(cfg: TrainConfig) -> float | None:
    """Training seconds of a finished run folder of this config (from its average rate), else ``None``."""
    run_dir = Path(cfg.run_dir)
    if not (run_dir / "model.safetensors").exists():
        return None
    saved = load_config(TrainConfig, run_dir / "config.json")
    same = dict(run_dir=cfg.run_dir, resume=cfg.resume, progress=cfg.progress)
    if dataclasses.replace(saved, **same) != cfg:
        return None
    last = [r for r in MetricsLog(run_dir / "metrics.jsonl").read() if "images_per_s" in r][-1]
    return last["step"] * cfg.batch_size / last["images_per_s"]


def run(name: str, runs_dir: Path) -> dict:
    cfg = run_config(name, runs_dir)
    t0 = time.perf_counter()
    seconds = _finished_seconds(cfg)  # a finished run of the same config is scored, not trained again
    if seconds is None:
        seconds = train_run(dataclasses.replace(cfg, resume=False)).seconds
    result = score(name, cfg, seconds)
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result["threads"] = torch.get_num_threads()
    result["machine"] = machine()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    return result


def _row(r: dict) -> str:
    if "generalised" not in r:
        return (
            f"| {r['run']} | {r['fold']} | {r['text']} | {r['seed']} | – | – | – | – | – | – | – | "
            f"{r['closed_set_seen']['miou']} | {r['train_seconds']:.0f} |"
        )
    g, c, u = r["generalised"], r["generalised_calibrated"], r["unseen_only"]
    return (
        f"| {r['run']} | {r['fold']} | {r['text']} | {r['seed']} | {g['seen_miou']} / {g['unseen_miou']} / "
        f"{g['harmonic']} | {c['seen_miou']} / {c['unseen_miou']} / {c['harmonic']} | "
        f"{r['calibration']['offset']} | {u['miou']} | {u['chance_uniform_miou']} | {u['pixel_acc']} | "
        f"{u['chance_uniform_pixel_acc']} / {u['chance_majority_pixel_acc']} | {r['closed_set_seen']['miou']} | "
        f"{r['train_seconds']:.0f} |"
    )


def report(results: list[dict]) -> str:
    """Markdown: the main table, per-class unseen-only IoU and the seen classes that take unseen pixels."""
    lines = [
        "| run | fold | text | seed | generalised seen / unseen / H | calibrated seen / unseen / H | offset | "
        "unseen-only mIoU | chance mIoU | unseen-only pixel acc | chance acc (uniform / majority) | "
        "closed-set seen mIoU | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(_row(r) for r in results),
        "",
        "Unseen-only per-class IoU, and the seen class taking most of each unseen class's pixels when all labels "
        "compete (share of that class's pixels):",
        "",
        "| run | per-class unseen-only IoU | unseen pixels taken by (generalised) |",
        "|---|---|---|",
    ]
    for r in results:
        if "unseen_only" not in r:
            continue
        per = ", ".join(f"{k} {v}" for k, v in r["unseen_only"]["per_class_iou"].items())
        took = ", ".join(
            f"{k}→{v['seen_class']} {v['share']}" for k, v in r["unseen_pixels_taken_by"].items()
        )
        lines.append(f"| {r['run']} | {per} | {took} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=None, help=f"runs to train (default all): {run_names()}")
    ap.add_argument("--runs-dir", type=Path, default=Path("/tmp/lseg_nb_msrc_zero_shot"))
    ap.add_argument("--rerun", action="store_true", help="train again even when a result is cached")
    ap.add_argument("--report", action="store_true", help="only print the tables of the cached results")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for name in args.runs or run_names():
            path = RESULTS / f"{name}.json"
            if path.exists() and not args.rerun:
                print(f"{name}: cached ({path})")
                continue
            result = run(name, args.runs_dir)
            atomic_write_text(path, json.dumps(result, indent=2) + "\n")
            print(
                json.dumps({k: result.get(k) for k in ("run", "generalised", "unseen_only")})[:600],
                flush=True,
            )
    cached = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    order = [n for n in run_names() if n in cached]
    print(report([cached[n] for n in order]))


if __name__ == "__main__":
    main()
