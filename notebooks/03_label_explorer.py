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
# # 03 · Label explorer: segment with any words
#
# The label set of LSeg is just a list of strings, so at test time it can be anything: class names the model
# never trained on, single attributes ("red", "stripes") or words from another domain ("grass", "sky").
# Pick an image, type comma-separated labels and the segmentation updates; each pixel takes the label whose
# text embedding is most similar. The image's pixel embeddings are computed once per image (`Predictor`),
# so changing the labels costs only the text encoder.
#
# Try: `red, green, blue, yellow` (colour only), `stripes, dots, checks, plain` (pattern only), or words the
# model never saw, e.g. `grass, sky, fire, water`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
max_images = 50  # images offered by the slider
labels = "red, green, blue, yellow"
index = 0
static_labels = "stripes, dots, checks, plain"  # the static figure below (also rendered in headless runs)
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import ensure_run, load_run, show
from lseg_nb.apps.widgets import LabelExplorer, label_explorer

run = load_run(ensure_run(run_dir, steps=train_steps))
images = run.dataset(split, max_images)

# %% [markdown]
# ## Interactive (needs a live kernel)

# %%
label_explorer(run.model, images, labels, index)

# %% [markdown]
# ## Static example
# The same query as a plain figure, for exported or headless runs.

# %%
show(LabelExplorer(run.model, images).figure(index, static_labels))
