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
# # 13 · LSeg as a feature extractor: store per-pixel features, query them with any text later
#
# 3D scene understanding and robot mapping (OpenScene, VLMaps, ...) use LSeg as a per-pixel CLIP-space feature
# extractor: features of many views are stored once, fused in 3D, and queried with label texts afterwards. How the
# image is resized and padded before the network changes the features, so `extract_features` implements the
# downstream recipes by name (see `lseg_nb.engine.features`):
#
# * `native`: lseg_nb's single pass (padded to the backbone stride), features on the embedding grid;
# * `openscene`: the official demo checkpoint as OpenScene extracts it (resize x2, pad black to a square, add the
#   mirrored pass): features at the original image resolution;
# * `vlmaps`: VLMaps' sliding windows (long side 520, 480 px windows), features at the resized image.
#
# This notebook stores the features of a few test images (float16 `.npy` files plus `features.json`, and the
# label texts' embeddings), then — **without the model** — reads them back and colours each pixel by its nearest
# text. For a model without head blocks and the `native` recipe at the image size that map *is* the model's own
# prediction; other recipes show how much the preprocessing moves it. Files go to `run_dir/features/13_features/`,
# figures to `run_dir/figures/13_features/`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
examples = [0, 1, 2]  # image indices in the split
recipe = "native"  # "native" | "openscene" | "vlmaps"
feature_size = "image"  # "image": each image's size; None: the recipe's own resolution
distractors = None  # extra texts to query: None = the dataset's manifest list, or comma-separated words
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %% [markdown]
# ## 1 · Extract and store (needs the model)

# %%
from lseg_nb.apps.notebook import distractor_words, ensure_run, figure_dir, load_run, show
from lseg_nb.data.transforms import denormalize
from lseg_nb.engine.feature_store import save_features, write_feature_manifest
from lseg_nb.engine.features import extract_features, model_label_map

run = load_run(ensure_run(run_dir, steps=train_steps))
dataset = run.dataset(split)
class_names = run.class_names
texts = class_names + distractor_words(run, distractors)  # class names first
out = run.run_dir / "features" / "13_features"
files, images, targets, predictions = {}, {}, {}, {}
for i in examples:
    image, target = dataset[i]
    size = tuple(target.shape) if feature_size == "image" else feature_size
    feats = extract_features(run.model, image, recipe, size=size)
    files[f"image_{i}.npy"] = save_features(out / f"image_{i}.npy", feats)
    # kept for the figures only: the image, its ground truth and the model's own prediction
    images[i] = denormalize(image, run.model.config.mean, run.model.config.std)
    targets[i] = target.numpy()
    predictions[i] = model_label_map(run.model, image, run.model.encode_text(run.class_names)).numpy()
write_feature_manifest(
    out, run.model, recipe, size=None, files=files, texts=texts, extra={"weights": str(run_dir)}
)
print(f"{len(files)} feature files in {out}: {files}")

# %% [markdown]
# The manifest says what the arrays are: model (and the hash of its config), recipe, text dimension,
# resolution, dtype, layout and normalisation.

# %%
import json

manifest = json.loads((out / "features.json").read_text())
{k: manifest[k] for k in ("recipe", "text_dim", "resolution", "dtype", "layout", "normalisation", "load")}

# %% [markdown]
# ## 2 · Query the stored features (no model)
# Only files are read from here on: the feature arrays and the stored text embeddings.

# %%
import numpy as np

from lseg_nb.diagnostics import nearest_text_map, vocabulary_shares
from lseg_nb.engine.feature_store import load_features, load_text_embeddings, read_feature_manifest
from lseg_nb.viz import plot_nearest_text_row

del run  # nothing below uses the model
manifest = read_feature_manifest(out)
vocab, text_emb = load_text_embeddings(out)
figures = figure_dir(run_dir, "13_features")
nearest, agreement = {}, {}
c = len(class_names)
for i in examples:
    feats = load_features(out / f"image_{i}.npy")
    size = targets[i].shape  # features at another resolution are resized (bilinear) for the figure
    nearest[i] = nearest_text_map(feats, text_emb, vocab, out_size=size)[0].numpy()
    nearest_class = nearest_text_map(feats, text_emb[:c], vocab[:c], out_size=size)[0].numpy()
    agreement[i] = float((nearest_class == predictions[i]).mean())
    fig = plot_nearest_text_row(images[i], predictions[i], targets[i], nearest[i], vocab, class_names)
    show(fig, save=figures / f"nearest_text_image_{i}")

# %% [markdown]
# Share of pixels whose nearest class name (from the stored features) is the class the model predicts: all (100 %) up to
# float16 ties for `native` at the image size on a model without head blocks. Then: which texts of the whole
# vocabulary win over these images.

# %%
from IPython.display import display

from lseg_nb.apps.notebook import notebook_table

print("share of pixels with nearest text == model prediction, per image:")
display(notebook_table([{"image": i, "agreement": a} for i, a in agreement.items()], fractions=["agreement"]))
shares = vocabulary_shares(np.concatenate([n.ravel() for n in nearest.values()]), vocab)
notebook_table([{"text": t, "share of pixels": s} for t, s in shares], fractions=["share of pixels"])
