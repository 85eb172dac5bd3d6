# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Zero-shot evaluation: unseen labels only vs all labels
#
# A trained run is scored on its test split in two settings computed from the same image features:
#
# * **unseen labels only** (the LSeg paper's protocol): the label set is restricted to the fold's unseen
#   classes and only their pixels are scored — "can the model tell the new classes apart?";
# * **all labels** (generalised zero-shot): every label competes, so unseen pixels can also be lost to seen
#   labels; seen mIoU, unseen mIoU and their harmonic mean show the bias towards training classes.
#
# `mode` picks the inference: `single` (one pass), `sliding` (`crop_size` windows, averaged overlaps) or
# `multiscale` (the official scales 0.5–1.75 with flips; about 12x slower).

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
mode = "single"  # "single" | "sliding" | "multiscale"
max_images = None  # cap for quick looks
n_examples = 4
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
import pandas as pd

from lseg_nb.apps.notebook import ensure_run, metrics_table, show
from lseg_nb.apps.pipeline import evaluate_run
from lseg_nb.viz.segmentation import plot_examples, plot_per_class_iou

result = evaluate_run(
    ensure_run(run_dir, steps=train_steps), split, mode=mode, max_images=max_images, examples=n_examples
)
pd.DataFrame(metrics_table(result)).set_index("setting")

# %% [markdown]
# ## Per-class IoU
# Orange bars (marked `*`) are unseen classes. In the generalised setting they compete with every seen label;
# in the paper's setting only with each other.

# %%
a, u = result.all_labels, result.unseen_only
show(plot_per_class_iou(a.per_class_iou, a.class_names, result.unseen or (), "all labels (generalised)"))
if u is not None:
    show(
        plot_per_class_iou(
            u.per_class_iou, u.class_names, range(len(u.class_names)), "unseen labels only (paper)"
        )
    )

# %% [markdown]
# ## Examples (all labels)

# %%
show(
    plot_examples([(e.image, e.pred, e.target) for e in result.examples], a.class_names, result.unseen or ())
)
