"""Readable summaries of results for people: tables of evaluation settings (CLI, notebooks, reports).

Every row names its setting and protocol; chance baselines sit next to the unseen-only score they qualify.
"""

from __future__ import annotations

import math
from typing import Any

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
