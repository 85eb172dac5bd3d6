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
# Do unseen pixels sit near their own (never trained) label text? One 2-D UMAP of a stratified sample of test
# pixels together with the label texts answers it by eye, and the rank of each class's own text answers it by
# number.
#
# * **The modality gap.** Pixel and text embeddings live in two separate cones of the embedding sphere, so a
#   joint UMAP of the raw embeddings puts every text on one point, away from all pixels. Before the projection
#   each modality is therefore centred: its own mean is subtracted and the vectors are renormalised
#   (the parameter `centre = False` draws the raw embeddings, gap included). The figure's title says which space is drawn.
# * **Left, the map.** Pixels are coloured by class (the same colour as in every other figure; the key on the
#   right names each class), circles for seen classes and triangles for unseen ones (`*` after a name). Each
#   class's pixel centroid (large marker) is joined to its own text's star: a short line means the cluster sits
#   at its text. Text labels are laid out so they never overprint.
# * **Right, the number.** The rank of each class's own text among all class texts by cosine similarity to its
#   pixel centroid, computed in the embedding space, not in 2-D (1 = nearest; bars: raw embeddings, the scores
#   the classifier compares; dots: the centred space the map is drawn from). The title counts the classes whose
#   own text is the nearest, seen and unseen; the table below lists every class with its nearest text.
#
# UMAP distorts global distances (a long line can still be rank 1): trust the ranks, and read the map for which
# clusters are near which texts; notebook 04 gives the per-pixel version. The first UMAP fit in a kernel
# compiles numba code (about a minute); later fits are fast. The figure is also saved as
# `run_dir/figures/05_umap/joint_umap.png`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
max_images = 40
max_pixels = 4000  # pixels embedded by UMAP (stratified per class)
n_neighbors = 15
n_epochs = None  # None: UMAP's default; small values for quick runs
seed = 0
centre = True  # centre each modality before the projection (False: raw embeddings, modality gap included)
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import ensure_run, figure_dir, load_run, notebook_table, show
from lseg_nb.diagnostics import joint_umap
from lseg_nb.diagnostics.collect import iter_pixel_embeddings
from lseg_nb.viz import plot_umap

run = load_run(ensure_run(run_dir, steps=train_steps))
pixels = iter_pixel_embeddings(run.model, run.dataset(split), max_images)
text = run.model.encode_text(run.class_names)
umap_args = dict(max_pixels=max_pixels, n_neighbors=n_neighbors, n_epochs=n_epochs, seed=seed, centre=centre)
result = joint_umap(pixels, None, text, run.class_names, run.seen, run.unseen, **umap_args)

# %%
show(plot_umap(result), save=figure_dir(run, "05_umap") / "joint_umap")

# %% [markdown]
# Rank of each class's own text among all class texts by cosine to its pixel centroid (1 = nearest).

# %%
notebook_table(result.rank_rows(), rename={"rank": "rank (raw)", "rank_centred": "rank (centred, the map)"})
