"""Readable summaries of results for people: tables of evaluation settings (CLI, notebooks, reports).

Every row names its setting (which labels compete, which pixels are scored) and the header names the data and the
inference protocol; chance baselines sit right below the score they qualify.
"""

from __future__ import annotations

import math
from typing import Any

from lseg_nb.config import PUBLISHED_MIOU, RECIPES
from lseg_nb.engine.evaluate import EvalResult
from lseg_nb.engine.metrics import Baseline, SegMetrics

#: What each setting of an :class:`EvalResult` measures (also written into the CLI's JSON).
SETTINGS = {
    "all_labels": "every label competes and every labelled pixel is scored; with a zero-shot fold this is the "
    "generalised zero-shot setting (seen / unseen / harmonic mIoU)",
    "unseen_only": "ZS3Net/SPNet-style zero-shot setting: only the fold's unseen labels compete and only their "
    "pixels are scored (not the LSeg paper's episodic protocol)",
    "baseline": "chance scores of label-free guesses on the all-labels pixels: every pixel = the most frequent "
    "class (majority) or a uniform random label (expected value)",
    "unseen_baseline": "the same chance scores for the unseen-only setting (its labels and pixels)",
    "calibrated": "the generalised setting again after seen-class bias calibration: seen_offset (fitted on the "
    "validation split to maximise the harmonic mean there) is subtracted from every seen label's logit",
}


def percent(v: float | None) -> float | None:
    """A fraction as a percentage rounded to 0.1; ``None`` for missing or NaN values."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100 * v, 1)


def _labels(n: int) -> str:
    return f"{n} label" if n == 1 else f"{n} labels"


def _chance_rows(b: Baseline | None) -> list[dict[str, Any]]:
    if b is None:
        return []
    return [
        {
            "setting": f"  chance: every pixel = majority class ({b.majority_class})",
            "mIoU": percent(b.majority_miou),
            "pixel acc": percent(b.majority_pixel_acc),
        },
        {
            "setting": f"  chance: uniform guess over {_labels(b.num_labels)}",
            "mIoU": percent(b.uniform_miou),
            "pixel acc": percent(b.uniform_pixel_acc),
        },
    ]


def _row(setting: str, m: SegMetrics) -> dict[str, Any]:
    return {
        "setting": setting,
        "mIoU": percent(m.miou),
        "pixel acc": percent(m.pixel_acc),
        "seen mIoU": percent(m.seen_miou),
        "unseen mIoU": percent(m.unseen_miou),
        "harmonic": percent(m.harmonic_iou),
    }


def metrics_rows(result: EvalResult) -> list[dict[str, Any]]:
    """One row (values in %) per setting, each followed by its chance baselines (majority class, uniform guess).

    With a zero-shot fold: all labels (generalised zero-shot: mIoU, pixel accuracy, seen / unseen / harmonic
    mIoU; then the same after seen-bias calibration when the result has it), then unseen labels only
    (ZS3Net/SPNet-style). Without a fold: all labels (a fixed label set) only, and the seen / unseen / harmonic
    columns are left out.
    """
    a = result.all_labels
    k = len(a.class_names)
    zero_shot = bool(result.unseen)
    split_cols = ("seen mIoU", "unseen mIoU", "harmonic")
    rows = [
        _row(f"all {k} labels (generalised zero-shot)" if zero_shot else f"all {k} labels (fixed set)", a)
    ]
    if result.calibrated is not None:
        offset = f"offset {result.seen_offset:.2f} from val"
        rows.append(_row(f"all {k} labels, seen-bias calibrated ({offset})", result.calibrated))
    rows += _chance_rows(result.baseline)
    u = result.unseen_only
    if u is not None:
        n = len(u.class_names)
        rows.append(
            {
                "setting": f"unseen {_labels(n)} only (ZS3Net/SPNet-style)",
                "mIoU": percent(u.miou),
                "pixel acc": percent(u.pixel_acc),
            }
        )
        rows += _chance_rows(result.unseen_baseline)
    keys = ["setting", "mIoU", "pixel acc", *(split_cols if zero_shot else ())]
    return [{key: row.get(key) for key in keys} for row in rows]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as a fixed-width text table (``-`` for missing values)."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[("-" if r[k] is None else str(r[k])) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return "\n".join([line(keys), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as a Markdown table (empty cells for missing values)."""
    if not rows:
        return ""
    keys = list(rows[0])
    body = [[("" if r[k] is None else str(r[k]).strip()) for k in keys] for r in rows]
    return "\n".join("| " + " | ".join(c) + " |" for c in [keys, ["---"] * len(keys), *body])


def inference_name(result: EvalResult) -> str:
    """The inference protocol of ``result`` in words, e.g. ``single (one pass over the whole image)``."""
    name = result.protocol or result.mode
    return name + " (one pass over the whole image)" if name == "single" else name


def data_line(
    result: EvalResult, dataset: str | None = None, split: str | None = None, fold: int | None = None
) -> str:
    """One line naming what was scored: dataset, split, fold with its unseen classes, number of images."""
    parts = [p for p in (dataset, f"{split} split" if split else None) if p]
    if result.unseen:
        names = [result.all_labels.class_names[c] for c in result.unseen]
        parts.append(
            f"{'fold ' + str(fold) if fold is not None else 'zero-shot'} (unseen: {', '.join(names)})"
        )
    else:
        parts.append("no zero-shot fold")
    parts.append(f"{result.num_images} images")
    return ", ".join(parts)


def evaluation_table(
    result: EvalResult, dataset: str | None = None, split: str | None = None, fold: int | None = None
) -> str:
    """The CLI's summary of an evaluation: what was scored, the inference protocol, then the settings table
    (values in %). No confusion matrices (they are in the JSON file)."""
    return "\n".join(
        [
            data_line(result, dataset, split, fold),
            f"inference: {inference_name(result)}; values in %",
            format_table(metrics_rows(result)),
        ]
    )


def evaluation_record(
    result: EvalResult, dataset: str | None = None, split: str | None = None, fold: int | None = None
) -> dict[str, Any]:
    """:meth:`EvalResult.to_dict` with the data it was scored on and what each setting means (the CLI's JSON)."""
    names = list(result.all_labels.class_names)
    return {
        "dataset": dataset,
        "split": split,
        "fold": fold,
        "unseen_classes": [names[c] for c in result.unseen] if result.unseen else [],
        "settings": {
            k: v
            for k, v in SETTINGS.items()
            if (not k.startswith("unseen") or result.unseen_only is not None)
            and (k != "calibrated" or result.calibrated is not None)
        },
        **result.to_dict(),
    }


def _r1(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 1)


def benchmark_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (values in %) of an episodic benchmark result: the paper's protocol, then the generalised settings
    (``evaluate_source(..., generalised=True)``; not reported in the paper) when present."""
    rows = [
        {
            "setting": "episodic ['others', class] (paper protocol)",
            "mIoU": _r1(result["miou"]),
            "FB-IoU": _r1(result["fb_iou"]),
            "seen mIoU": None,
            "harmonic": None,
            "pixel acc": None,
        }
    ]
    for scope, g in result.get("generalised", {}).items():
        what = "others + fold classes" if scope == "fold" else "others + every class"
        rows.append(
            {
                "setting": f"generalised, {what} (not in the paper)",
                "mIoU": _r1(g["miou_unseen"]),
                "FB-IoU": None,
                "seen mIoU": _r1(g["miou_seen"]),
                "harmonic": _r1(g["hiou"]),
                "pixel acc": _r1(g["pixel_acc"]),
            }
        )
    return rows


def published_miou(benchmark: str, fold: int) -> dict[str, float]:
    """Published mIoU of the recipes that train ``benchmark`` fold ``fold`` (official README model zoo)."""
    return {
        name: v
        for name, v in PUBLISHED_MIOU.items()
        if RECIPES[name].data.dataset == benchmark and RECIPES[name].data.fold == fold
    }


def benchmark_table(result: dict[str, Any], max_classes: int = 20) -> str:
    """The CLI's summary of an episodic benchmark result: what was scored, the settings table (mIoU of the
    unseen classes; values in %), per-class IoU (up to ``max_classes`` classes) and the published numbers."""
    size = result["image_size"]
    head = (
        f"{result['benchmark']} fold {result['fold']}: {result['num_episodes']} episodes "
        f"({result['distinct_episodes']} distinct), {size}x{size}, paper label texts: "
        f"{result.get('labels_match_paper')} (values in %)"
    )
    lines = [head, format_table(benchmark_rows(result))]
    per_class = result["per_class_iou"]
    if len(per_class) <= max_classes:
        episodes = result["episodes_per_class"]
        lines += [
            "",
            format_table(
                [{"class": n, "IoU": _r1(v), "episodes": episodes[n]} for n, v in per_class.items()]
            ),
        ]
    else:
        lines.append(f"per-class IoU of the {len(per_class)} classes: see the JSON")
    published = published_miou(result["benchmark"], result["fold"])
    if published:
        lines.append(
            "published mIoU, same protocol (official README model zoo): "
            + ", ".join(f"{k} {v}" for k, v in published.items())
        )
    return "\n".join(lines)
