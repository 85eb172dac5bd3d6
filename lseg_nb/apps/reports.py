"""Readable summaries of results for people: tables of evaluation settings (CLI, notebooks, reports).

Every row names its setting and protocol; chance baselines sit next to the unseen-only score they qualify.
"""

from __future__ import annotations

import math
from typing import Any

from lseg_nb.config import PUBLISHED_MIOU, RECIPES
from lseg_nb.engine.evaluate import EvalResult


def percent(v: float | None) -> float | None:
    """A fraction as a percentage rounded to 0.1; ``None`` for missing or NaN values."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100 * v, 1)


def metrics_rows(result: EvalResult) -> list[dict[str, Any]]:
    """One row (values in %) per setting: all labels (generalised), unseen labels only (ZS3Net/SPNet-style) and
    that setting's chance baselines (majority class, uniform guess)."""
    a = result.all_labels
    rows = [
        {
            "setting": "all labels (generalised)" if result.unseen else "all labels",
            "mIoU": percent(a.miou),
            "pixel acc": percent(a.pixel_acc),
            "seen mIoU": percent(a.seen_miou),
            "unseen mIoU": percent(a.unseen_miou),
            "harmonic": percent(a.harmonic_iou),
        },
    ]
    u, b = result.unseen_only, result.unseen_baseline
    if u is not None and b is not None:
        empty = {"seen mIoU": None, "unseen mIoU": None, "harmonic": None}
        rows.append(
            {
                "setting": "unseen labels only (ZS3Net-style)",
                "mIoU": percent(u.miou),
                "pixel acc": percent(u.pixel_acc),
                **empty,
            }
        )
        rows.append(
            {
                "setting": f"  chance: majority class ({b.majority_class})",
                "mIoU": percent(b.majority_miou),
                "pixel acc": percent(b.majority_pixel_acc),
                **empty,
            }
        )
        rows.append(
            {
                "setting": f"  chance: uniform over {b.num_labels} labels",
                "mIoU": percent(b.uniform_miou),
                "pixel acc": percent(b.uniform_pixel_acc),
                **empty,
            }
        )
    return rows


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


def evaluation_table(result: EvalResult) -> str:
    """The CLI's summary of an evaluation: protocol line, then the settings table (values in %)."""
    head = f"{result.num_images} images, protocol {result.protocol or result.mode} (values in %)"
    return head + "\n" + format_table(metrics_rows(result))


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
