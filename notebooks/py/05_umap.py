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
# # 05 · Joint UMAP of pixel and text embeddings
#
# One 2-D UMAP of a stratified sample of test pixels together with the label texts. Circles are pixels of
# seen classes, triangles pixels of unseen classes, stars the texts (`*` = unseen). If zero-shot transfer works,
# the unseen pixel clusters sit next to their own (never trained) text star rather than next to a seen one.
#
# UMAP distorts global distances; read it together with the nearest-neighbour numbers of notebook 04. The
# first UMAP fit in a kernel compiles numba code (about a minute); later fits are fast. The figure is also saved
# as `run_dir/figures/05_umap/joint_umap.png`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
max_images = 40
max_pixels = 4000  # pixels embedded by UMAP (stratified per class)
n_neighbors = 15
n_epochs = None  # None: UMAP's default; small values for quick runs
seed = 0
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import ensure_run, figure_dir, load_run, show
from lseg_nb.diagnostics import joint_umap
from lseg_nb.diagnostics.collect import iter_pixel_embeddings
from lseg_nb.viz import plot_umap

run = load_run(ensure_run(run_dir, steps=train_steps))
pixels = iter_pixel_embeddings(run.model, run.dataset(split), max_images)
text = run.model.encode_text(run.class_names)
umap_args = dict(max_pixels=max_pixels, n_neighbors=n_neighbors, n_epochs=n_epochs, seed=seed)
result = joint_umap(pixels, None, text, run.class_names, run.seen, run.unseen, **umap_args)

# %%
show(plot_umap(result), save=figure_dir(run, "05_umap") / "joint_umap")
