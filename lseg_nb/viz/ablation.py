"""Plot of the text-encoder ablation (:mod:`lseg_nb.diagnostics.ablation`): grouped bars per encoder."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from lseg_nb.diagnostics.ablation_report import AblationReport
from lseg_nb.viz.mpl import figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BARS = (
    ("seen_miou", "seen mIoU (all labels)", "tab:blue"),
    ("unseen_miou", "unseen mIoU (all labels)", "tab:orange"),
    ("harmonic_iou", "harmonic IoU", "tab:green"),
    ("unseen_only_miou", "unseen mIoU (unseen labels only, ZS3Net-style)", "tab:red"),
)


def plot_ablation(report: AblationReport, title: str | None = None) -> Figure:
    """Grouped bars (IoU in %) of seen / unseen / harmonic (generalised) and unseen-only (ZS3Net-style) per row.

    Skipped rows keep their slot, marked ``skipped``; undefined values are marked ``n/a``.
    """
    rows = report.rows
    if not rows:
        raise ValueError("the ablation report has no rows to plot")
    fig = figure(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(rows))
    width = 0.8 / len(BARS)
    for j, (key, label, colour) in enumerate(BARS):
        offset = (j - (len(BARS) - 1) / 2) * width
        for xi, row in zip(x, rows, strict=True):
            if row.status != "ok":
                continue
            value = getattr(row, key)
            if value is None or np.isnan(value):
                ax.text(xi + offset, 1, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
                continue
            ax.bar(xi + offset, 100 * value, width, color=colour, label=label)
            ax.text(
                xi + offset, 100 * value + 0.5, f"{100 * value:.0f}", ha="center", va="bottom", fontsize=6
            )
    for xi, row in zip(x, rows, strict=True):
        if row.status != "ok":
            reason = textwrap.fill(row.reason or "", 24, max_lines=5, placeholder=" ...")
            ax.text(xi, 2, f"skipped:\n{reason}", ha="center", va="bottom", fontsize=7)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), fontsize=7, loc="outside lower center", ncols=len(unique))
    ax.set_xticks(x, [r.label for r in rows], rotation=15, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("IoU (%)")
    kind = "retrained per encoder" if report.kind == "retrain" else "frozen image features, swapped text"
    ax.set_title(
        title or f"Text-encoder ablation ({kind}): {report.dataset} fold {report.fold}, {report.eval_split}"
    )
    return fig
