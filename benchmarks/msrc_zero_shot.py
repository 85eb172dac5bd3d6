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

Several seeds of one configuration (``minilm_nb``, ``minilm_nb_s1``, ``minilm_nb_s2``) are summarised by
:func:`seed_summary`: per metric the seeds' values, their mean and standard deviation, and a pooled image-level
bootstrap interval of the seed mean (the same resampled test images for every seed, each seed's metric
recomputed from its per-image counts, then averaged over the seeds). The interval covers the choice of test
images for the averaged model, not the seed variance (that is the standard deviation); it needs the per-image
counts each result stores from 2026-12-04 on (older cached results have none and get no interval).

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
from lseg_nb.engine.bootstrap import count_metrics, resample_weights
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
    out["per_image"] = {
        k: _counts_record(result.settings[k].per_image) for k in ("all_labels", "unseen_only")
    }
    return out


def _counts_record(counts) -> dict:
    """Per-image counts of one setting as JSON lists (for :func:`seed_summary`'s pooled bootstrap)."""
    return {
        "ids": list(counts.ids),
        "tp": counts.tp.tolist(),
        "gt": counts.gt.tolist(),
        "pred": counts.pred.tolist(),
    }


#: (label, result section, key, per-image setting, split-dependent metric of :func:`count_metrics`)
SUMMARY_METRICS = (
    ("generalised mIoU", "generalised", "miou", "all_labels", "miou"),
    ("generalised seen mIoU", "generalised", "seen_miou", "all_labels", "seen_miou"),
    ("generalised unseen mIoU", "generalised", "unseen_miou", "all_labels", "unseen_miou"),
    ("generalised harmonic", "generalised", "harmonic", "all_labels", "harmonic_iou"),
    ("unseen-only mIoU", "unseen_only", "miou", "unseen_only", "miou"),
)


def configuration(name: str) -> str:
    """The configuration of a run: its name without the seed suffix (``minilm_nb_s1`` -> ``minilm_nb``)."""
    parts = name.split("_")
    return "_".join(parts[:2]) if len(parts) > 2 and parts[2].startswith("s") else name


def _pooled_interval(
    results: list[dict], setting: str, metric: str, resamples: int, seed: int, level: float
) -> list[float] | None:
    """Percentile interval (percent) of the seed mean of ``metric`` over image resamples shared by all seeds;
    ``None`` when a result lacks per-image counts or the seeds were scored on different images."""
    records = [r.get("per_image", {}).get(setting) for r in results]
    if any(rec is None for rec in records) or len({tuple(rec["ids"]) for rec in records}) != 1:
        return None
    w = resample_weights(len(records[0]["ids"]), resamples, seed)
    per_seed = []
    for r, rec in zip(results, records, strict=True):
        names = list(r["generalised_per_class_iou"]) if setting == "all_labels" else list(r["unseen_classes"])
        seen = [names.index(n) for n in r["seen_classes"]] if setting == "all_labels" else None
        unseen = [names.index(n) for n in r["unseen_classes"]] if setting == "all_labels" else None
        sums = [w @ np.asarray(rec[k], dtype=np.int64) for k in ("tp", "gt", "pred")]
        per_seed.append(count_metrics(*sums, seen=seen, unseen=unseen)[metric])
    mean = np.mean(per_seed, axis=0)
    mean = mean[~np.isnan(mean)]
    if mean.size == 0:
        return None
    lo, hi = np.percentile(mean, [50 * (1 - level), 50 * (1 + level)])
    return [round(100 * float(lo), 1), round(100 * float(hi), 1)]


def seed_summary(
    results: list[dict], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> list[dict]:
    """Per configuration with two or more seeds and per metric of :data:`SUMMARY_METRICS`: ``values`` (percent,
    by seed), ``mean``, ``sd`` (sample standard deviation over seeds) and ``pooled_interval`` (module docstring).

    Args:
        results: the JSON records of :func:`score` (any order, several configurations).
        resamples: bootstrap resamples of the test images.
        seed: seed of the resampling.
        level: interval level.
    """
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(configuration(r["run"]), []).append(r)
    rows = []
    for config, runs in groups.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        if len(runs) < 2:
            continue
        for label, section, key, setting, metric in SUMMARY_METRICS:
            if any(section not in r for r in runs):
                continue
            values = [r[section][key] for r in runs]
            if any(v is None for v in values):
                continue
            rows.append(
                {
                    "configuration": config,
                    "metric": label,
                    "seeds": [r["seed"] for r in runs],
                    "values": values,
                    "mean": round(float(np.mean(values)), 1),
                    "sd": round(float(np.std(values, ddof=1)), 1),
                    "pooled_interval": _pooled_interval(runs, setting, metric, resamples, seed, level),
                }
            )
    return rows


def summary_table(rows: list[dict]) -> str:
    """Markdown table of :func:`seed_summary` rows."""
    lines = [
        "| configuration | metric | seeds | values | mean | sd | pooled 95 % interval of the mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r["pooled_interval"]
        ci = f"[{ci[0]}, {ci[1]}]" if ci else "– (no per-image counts stored)"
        lines.append(
            f"| {r['configuration']} | {r['metric']} | {', '.join(map(str, r['seeds']))} | "
            f"{' / '.join(map(str, r['values']))} | {r['mean']} | {r['sd']} | {ci} |"
        )
    return "\n".join(lines) + "\n"


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
    print("Seeds of one configuration (values in %):\n")
    print(summary_table(seed_summary([cached[n] for n in order])))


if __name__ == "__main__":
    main()
