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
# # 09 · Official LSeg checkpoints and the PASCAL-5i reproduction
#
# The official checkpoints are PyTorch-Lightning `.ckpt` files (names under `net.*`). `lseg_nb.checkpoints.official`
# reads them with `weights_only=True` (no code from the file runs), maps every tensor one-to-one onto
# `lseg_nb` names (tensors the official forward never uses are dropped by name, with the reason) and writes
# a self-describing `.safetensors` file that `load_lseg_nb` rebuilds strictly. Equivalent command:
# `lseg-nb convert demo_e200.ckpt demo_e200.safetensors`.
#
# **Where to get them** (not downloadable from here; put them in `checkpoints/` at the repository root):
#
# * `demo_e200.ckpt` — the demo model (ViT-L/16 + CLIP ViT-B/32 text encoder), linked from the
#   [official README](https://github.com/isl-org/lang-seg) (`gdown 1ayk6NXURI_vIPlym16f_RG3ffxBWHxvb`);
# * `pascal_fold0.ckpt` … `pascal_fold3.ckpt` — the zero-shot PASCAL-5i models with the ResNet-101 backbone,
#   from the same README's zero-shot section (the official `test_zs.sh` reads them from `checkpoints/`).
#
# With `checkpoint = None` (the default) this notebook only explains and skips the cells that need weights.

# %% tags=["parameters"]
checkpoint = None  # official .ckpt, e.g. "../checkpoints/pascal_fold0.ckpt"
converted = None  # output .safetensors (None: next to the checkpoint); reused when it exists
image = None  # optional image file to segment with `labels`
labels = "dog, grass, sky, other"
voc_root = None  # PASCAL VOC 2012 root (JPEGImages/ + SegmentationClassAug/) for the PASCAL-5i cell
fold = 0  # PASCAL-5i fold of `checkpoint`
max_episodes = None  # None: the official protocol (1000 episodes); small numbers for a quick look

# %%
from pathlib import Path

import torch

from lseg_nb.checkpoints import convert_official, load_lseg_nb

device = "cuda" if torch.cuda.is_available() else "cpu"
model = None
if checkpoint is None:
    print("no checkpoint given: download one as described above and set `checkpoint`; skipping")
else:
    out = Path(converted or Path(checkpoint).with_suffix(".safetensors"))
    if not out.is_file():
        print(convert_official(checkpoint, out).summary())
    model = load_lseg_nb(out, map_location=device)
    print(f"loaded {out}: {model.config.backbone}, text encoder {model.config.text.name}")

# %% [markdown]
# ## Segment an image with any labels

# %%
from lseg_nb.apps.notebook import parse_labels, show
from lseg_nb.apps.predict import segment
from lseg_nb.data.images import read_rgb
from lseg_nb.viz.explorer import plot_label_query

if model is None or image is None:
    print("skipped: needs `checkpoint` and `image`")
else:
    rgb, names = read_rgb(image), parse_labels(labels)
    show(plot_label_query(rgb, segment(model, rgb, names), names, title=Path(image).name))

# %% [markdown]
# ## PASCAL-5i zero-shot reproduction (ResNet-101)
#
# Official protocol (`EvalConfig(protocol="episodic")`, `lseg_nb.engine.episodic`): HSNet episode lists (`../shared/reference/splits/pascal/val`), each
# episode one query image resized to 480 × 480 and the label set `["others", <class>]`; 1000 episodes per fold,
# cycling the list as HSNet's loader does; mIoU is the mean foreground IoU over the fold's five unseen classes. Paper numbers (LSeg, ResNet-101, mIoU %):
#
# | fold 0 | fold 1 | fold 2 | fold 3 | mean |
# |---|---|---|---|---|
# | 52.8 | 53.8 | 44.4 | 38.5 | 47.4 |
#
# All four folds, one notebook run each (from the repository root; the outputs keep the numbers):
#
# ```bash
# for f in 0 1 2 3; do
#   .venv/bin/papermill notebooks/09_official_checkpoints.ipynb runs/pascal5i_fold$f.ipynb --cwd notebooks \
#     -p checkpoint ../checkpoints/pascal_fold$f.ckpt -p voc_root /data/VOCdevkit/VOC2012 -p fold $f
# done
# ```

# %%
from lseg_nb import DataConfig, EvalConfig, evaluate
from lseg_nb.data.manifests import shared_dir

PAPER_RN101 = {0: 52.8, 1: 53.8, 2: 44.4, 3: 38.5}
splits = shared_dir() / "reference" / "splits"
if model is None or voc_root is None:
    print("skipped: needs `checkpoint` (pascal_fold<f>.ckpt) and `voc_root`")
else:
    data = DataConfig(
        dataset="pascal5i", data_root=voc_root, splits=str(splits), fold=fold, max_images=max_episodes
    )
    res = evaluate(model, data, EvalConfig(protocol="episodic"))
    print(res.protocol_name)
    print(f"fold {fold}: mIoU {res.miou:.1f} (paper {PAPER_RN101[fold]}), FB-IoU {res.fb_iou:.1f}")
    print(
        f"{res.num_episodes} episodes ({res.distinct_episodes} distinct); per-class IoU:",
        {k: round(v, 1) for k, v in res.per_class_iou.items()},
    )
