"""Figure of the premise test (:mod:`lseg_nb.diagnostics.premise`): unseen-class IoU against the similarity to the
nearest seen class, one panel per text encoder of the runs, with each panel's rank correlation in its title."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lseg_nb.diagnostics.premise import PremiseResult
from lseg_nb.viz.mpl import figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TEXT_NAMES = {
    "sentence_transformers": "MiniLM text",
    "random": "random text (control)",
    "one_hot": "one-hot text",
}


def plot_premise(result: PremiseResult, annotate: bool = True) -> Figure:
    """Scatter of ``(similarity to nearest seen class, unseen-only IoU)`` per (run, unseen class), a panel per text
    encoder; ``annotate`` names each point's class."""
    kinds = list(result.correlations)
    fig = figure(figsize=(4.2 * len(kinds), 3.8), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        rows = [r for r in result.rows if r.text == kind]
        n, rho, p = result.correlations[kind]
        ax.scatter([r.similarity for r in rows], [r.iou for r in rows], s=22, alpha=0.8)
        if annotate:
            for r in rows:
                ax.annotate(r.unseen_class, (r.similarity, r.iou), fontsize=6, alpha=0.7, xytext=(2, 2),
                            textcoords="offset points")  # fmt: skip
        ax.set_title(
            f"{TEXT_NAMES.get(kind, kind)}\nSpearman rho {rho:+.2f}, p = {p:.2g} (n = {n})", fontsize=9
        )
        ax.set_xlabel("cosine similarity to the nearest seen class (MiniLM)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("unseen-only IoU of the class (%)")
    return fig
