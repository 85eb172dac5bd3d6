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
# # 10 · Training-free baselines: LSeg vs MaskCLIP / SCLIP / NACLIP
#
# Before asking how well a trained LSeg transfers to unseen labels, ask how far CLIP gets with **no training at
# all**. MaskCLIP, SCLIP and NACLIP change only the last block of a CLIP ViT so that every patch token lands in
# CLIP's joint text-image space (value path; q-q + k-k correlative attention; Gaussian-neighbourhood k-k
# attention without residual/FFN). In lseg_nb they are `DenseCLIP` models with LSeg's interface, so they run
# through the *same* protocol, label texts and metrics as the trained run below.
#
# Weights cannot be downloaded offline, so the default builds the CLIP model with **random weights**: the
# pipeline runs, but its numbers mean nothing. Set `clip_weights` to an open_clip tag (`"openai"`, needs
# internet or the Hugging Face cache) or a local weights file for real numbers (OpenAI files need the
# `-quickgelu` model name, e.g. `ViT-B-16-quickgelu`). The docs (`docs/training-free.md`) list the published mIoUs of each method.
# Figures are also saved in `run_dir/figures/10_training_free_baselines/`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished LSeg run; trained with the small default when missing
split = "test"
method = "maskclip"  # "maskclip" | "sclip" | "naclip"
clip_model = "ViT-B-16"  # any open_clip ViT name
clip_weights = None  # None: random weights (offline, meaningless numbers); "openai" or a local weights file
templates = ["a photo of a {}."]  # None: OpenAI's 80 ImageNet templates, as SCLIP/NACLIP (slower on CPU)
max_images = 8  # test images scored by both models
n_examples = 2
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %% [markdown]
# ## The two models
# The LSeg run was trained on the seen classes of its fold; the training-free model has seen no segmentation
# data at all. Both embed the same label strings with their own text encoder.

# %%
from lseg_nb.apps.notebook import ensure_run, load_run
from lseg_nb.models import DenseCLIPConfig, create_dense_clip

run = load_run(ensure_run(run_dir, steps=train_steps))
cfg = DenseCLIPConfig(
    method=method,
    name=clip_model,
    pretrained=clip_weights,
    templates=None if templates is None else tuple(templates),
)
dense = create_dense_clip(cfg)
print(f"LSeg: {run.config.model.backbone} | training-free: {dense.config.spec}, patch {dense.size_multiple}")

# %% [markdown]
# ## Same protocol, same labels
# `evaluate(model, data, protocol)` scores any model on the run's dataset and fold; each model normalises the
# images with its own statistics (`model.config.mean/std`). With a fold, the unseen-only row is the
# ZS3Net/SPNet-style zero-shot setting; for the training-free model every class is "unseen". Scores are in %,
# each model's chance rows indented under its settings.

# %%
import dataclasses

from lseg_nb import EvalConfig, evaluate
from lseg_nb.apps.notebook import metrics_table

data = dataclasses.replace(run.config.data, max_images=max_images)
protocol = EvalConfig()  # dense, one pass per image at the model's crop size
results = {
    name: evaluate(model, data, protocol, split, examples=n_examples)
    for name, model in [("LSeg (this run)", run.model), (dense.config.spec, dense)]
}
print("protocol:", protocol.describe())
metrics_table(results)

# %% [markdown]
# ## The same images, side by side
# First the LSeg predictions, then the training-free ones (all labels compete). With random CLIP weights the
# second figure is noise; with real weights expect coarse (patch-sized) but semantically placed masks.

# %%
from lseg_nb.apps.notebook import figure_dir, show
from lseg_nb.viz.segmentation import plot_examples

for (name, r), file in zip(results.items(), ["examples_lseg", f"examples_{method}"]):
    print(name)
    fig = plot_examples([(e.image, e.pred, e.target) for e in r.examples], run.class_names, run.unseen)
    show(fig, save=figure_dir(run, "10_training_free_baselines") / file)
