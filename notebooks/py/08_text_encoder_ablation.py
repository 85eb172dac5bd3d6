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
# # 08 · Text-encoder ablation: is zero-shot transfer carried by the text space?
#
# If unseen classes are recognised because their *texts* lie near the right places of the joint space, then
# replacing the text encoder by one without semantic geometry must destroy zero-shot transfer while leaving
# seen classes largely intact. Two experiments (`lseg_nb.diagnostics.ablation`):
#
# * **swap** (the referee's variant, cheap): keep the trained image encoder + decoder of `run_dir` frozen and
#   swap only the text encoder; the head's 1x1 projection into the text space is re-fitted on the seen classes
#   (`head_steps`). The image features are then identical for every encoder.
# * **retrain** (`retrain_steps > 0`, slow on CPU): train the same recipe once per text encoder.
#
# Encoders: MiniLM (the run's own, offline), random vectors, one-hot (every unseen text orthogonal to every
# seen one: the control) and CLIP (needs `clip_pretrained`, e.g. `"openai"` with cached weights; skipped
# otherwise). Scores (in %): seen / unseen / harmonic mIoU with all labels, and the unseen-only mIoU
# (ZS3Net/SPNet-style, not the paper's episodic protocol); `-` where a score is undefined or the encoder skipped.
# Figures are also saved in `run_dir/figures/08_text_encoder_ablation/`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
encoders = ["minilm", "random", "one_hot", "clip"]
clip_pretrained = None  # e.g. "openai" (cached open_clip weights) or a local checkpoint file
head_steps = 100  # re-fit steps of head.proj per swapped encoder
head_batch_size = None  # None: the run's batch size
max_eval_images = None
retrain_steps = 0  # > 0: also retrain one model per encoder into run_dir/ablation/retrain
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import ablation_table, ensure_run, figure_dir, run_labels, show
from lseg_nb.diagnostics import default_ablation_encoders, run_swap_ablation
from lseg_nb.viz.ablation import plot_ablation

run = ensure_run(run_dir, steps=train_steps)
specs = default_ablation_encoders(run_labels(run).class_names, clip_pretrained=clip_pretrained)
specs = {name: specs[name] for name in encoders}
kw = dict(head_steps=head_steps, head_batch_size=head_batch_size, max_eval_images=max_eval_images)
swap = run_swap_ablation(run, specs, run / "ablation" / "swap.json", **kw)

# %%
ablation_table(swap)

# %%
figures = figure_dir(run, "08_text_encoder_ablation")
show(plot_ablation(swap, "text encoder swapped on frozen image features"), save=figures / "swap")

# %% [markdown]
# ## Retraining per text encoder (optional)

# %%
import dataclasses

from lseg_nb.config import TrainConfig, load_config
from lseg_nb.diagnostics import run_text_encoder_ablation

if retrain_steps > 0:
    base = dataclasses.replace(load_config(TrainConfig, run / "config.json"), steps=retrain_steps)
    retrain = run_text_encoder_ablation(
        base, specs, run / "ablation" / "retrain", max_eval_images=max_eval_images
    )
    title = f"one model per text encoder ({retrain_steps} steps each)"
    show(plot_ablation(retrain, title), save=figures / "retrain")
else:
    print("retrain_steps = 0: set it (e.g. to the run's steps) to train one model per text encoder")
