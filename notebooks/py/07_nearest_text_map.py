# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py//py:percent
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
# # 07 · Nearest-text maps: what would each pixel be called in an open vocabulary?
#
# The dataset's label list is a closed world. Here every pixel is matched against a larger vocabulary — the
# class names plus distractor words (single attributes, unrelated nouns) — and coloured by its nearest text.
# Pixels of unseen classes that pick their own class name over everything else show genuine open-vocabulary
# behaviour; pixels that drift to a bare attribute ("red") or an unrelated noun show what the pixel embedding
# actually encodes.
#
# The distractor words default to the dataset's own list (`distractors` in its manifest); set `distractors` to your
# own comma-separated words, or `""` for the class names alone. The key marks unseen classes "(unseen)" and
# distractor words "(text)". Figures are also saved in `run_dir/figures/07_nearest_text_map/` (PNG, PDF, SVG).

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
examples = [0, 1, 2]  # image indices in the split
distractors = None  # None: the dataset's manifest list; or comma-separated words ("" for none)
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import distractor_words, ensure_run, figure_dir, load_run, show
from lseg_nb.diagnostics.collect import collect_examples
from lseg_nb.viz import plot_nearest_text_row

run = load_run(ensure_run(run_dir, steps=train_steps))
vocab = run.class_names + distractor_words(run, distractors)
rows = collect_examples(run.model, run.dataset(split), run.class_names, examples, vocabulary=vocab)
print("unseen classes:", run.labels.unseen_names, "| vocabulary:", vocab)

# %%
figures = figure_dir(run, "07_nearest_text_map")
for ex in rows:
    fig = plot_nearest_text_row(
        ex.image, ex.pred, ex.target, ex.nearest, vocab, run.class_names, unseen=run.unseen
    )
    show(fig, save=figures / f"nearest_text_image_{ex.index}")

# %% [markdown]
# ## Which texts win, over these images

# %%
import numpy as np
import pandas as pd

from lseg_nb.diagnostics import vocabulary_shares

pd.DataFrame(
    vocabulary_shares(np.concatenate([ex.nearest.ravel() for ex in rows]), vocab), columns=["text", "share"]
)
