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
# # 03 · Label explorer: segment with any words
#
# The label set of LSeg is just a list of strings, so at test time it can be anything: class names the model
# never trained on, single attributes ("red", "stripes") or words from another domain ("grass", "sky").
# Pick an image (or upload your own), type comma-separated labels and press Enter; each pixel takes the label
# whose text embedding is most similar. The image's pixel embeddings are computed once per image (`Predictor`),
# so changing the labels costs only the text encoder.
#
# What the widget shows:
# - **segmentation + key**: every pixel coloured by its most similar label; the key gives each label's pixel
#   share. A label's colour is fixed by its text, so it is the same in every figure and run.
# - **click a pixel**: its top-5 labels with softmax probabilities. The **temperature** T divides the logits
#   before the softmax, `p = softmax(logits / T)`: T = 1 is the model's own calibration (its logits are cosine
#   similarity × the logit scale, 1/0.07 by default), T > 1 flattens, T < 1 sharpens; the segmentation itself
#   (the argmax) does not depend on T.
# - **similarity heatmaps**: the raw cosine similarity of each label's text embedding with every pixel
#   embedding, on one colour scale for all labels.
#
# The picker names each image by its id in the dataset's split file. The static figures below are also saved
# as PNG files in `run_dir/figures/03_label_explorer/`.
#
# Uploaded images are RGB-converted, shrunk to 640 px on the long side and normalised with the model's
# `config.mean/std`. Any model with `encode_text`, `encode_image` and `logits_from_embeddings` works here.
#
# Try: `red, green, blue, yellow` (colour only), `stripes, dots, checks, plain` (pattern only), or words the
# model never saw, e.g. `grass, sky, fire, water`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
max_images = 50  # images offered by the picker
labels = "red, green, blue, yellow"
index = 0
temperature = 1.0  # softmax temperature of the clicked pixel's probabilities
static_labels = "stripes, dots, checks, plain"  # the static figures below (also rendered in headless runs)
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from IPython.display import display

from lseg_nb.apps.notebook import ensure_run, figure_dir, load_run, show
from lseg_nb.apps.widgets import LabelExplorer, label_explorer
from lseg_nb.viz.explorer import plot_similarity_maps

run = load_run(ensure_run(run_dir, steps=train_steps))
images = run.dataset(split, max_images)

# %% [markdown]
# ## Interactive (needs a live kernel)

# %%
explorer_widget = label_explorer(run.model, images, labels, index, temperature)
display(explorer_widget)

# %% [markdown]
# ## Static example
# The same views as plain figures, for exported or headless runs.

# %%
explorer = LabelExplorer(run.model, images)
query = explorer.query(index, static_labels)
figures = figure_dir(run, "03_label_explorer")
show(explorer.draw(query), save=figures / f"label_query_image_{index}")
show(plot_similarity_maps(query.similarity, query.labels), save=figures / f"similarity_maps_image_{index}")
