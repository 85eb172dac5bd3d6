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
# # 02 · Zero-shot evaluation: all labels vs unseen labels only, next to chance
#
# A trained run is scored on its test split in two settings computed from the same image features:
#
# * **all labels** (generalised zero-shot): every label competes, so unseen pixels can also be lost to seen
#   labels; seen mIoU, unseen mIoU and their harmonic mean show the bias towards training classes;
# * **unseen labels only** (the ZS3Net/SPNet-style setting, *not* the LSeg paper's protocol — the paper's
#   zero-shot numbers are the episodic binary protocol of notebook 09): only the fold's unseen labels compete and
#   only their pixels are scored. With few unseen classes even a label-free guess scores well, so the table shows
#   the **chance baselines** (every pixel = the most frequent unseen class; a uniform guess) right below it.
#
# All scores are in % (tables and charts); the chance rows are indented under the setting they qualify.
#
# With `calibrate_seen`, a second all-labels row removes the seen-class bias: one offset, subtracted from every
# seen label's logit, is fitted on the validation split (best harmonic mean there) and applied to the test split.
#
# Figures are also saved as PNG files in `run_dir/figures/02_zero_shot_evaluation/`. Example images are chosen
# for class coverage (each next image adds the most classes not yet shown), not the first few of the split.
#
# `protocol` picks the inference: `run` (the run's recipe, `eval` in its config.json), `single` (one pass),
# `sliding` (windows of the model's crop size, averaged overlaps) or `official` (the official multi-scale
# protocol: long side `ceil(520 * s)` for s in 0.5–1.75, flip, stride 2/3; about 12x slower). `amp` runs the
# network under bf16 (CPU or GPU) or fp16 (GPU only) autocast — faster on a GPU, numbers differ slightly, so the
# printed protocol names it; the windows of a scale always go through the network in batches.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
protocol = "run"  # "run" | "single" | "sliding" | "official"
amp = "none"  # "none" | "bf16" | "fp16" (GPU only)
max_images = None  # cap for quick looks
n_examples = 4
calibrate_seen = True  # also score all labels after seen-bias calibration (needs a zero-shot fold)
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
import dataclasses

from lseg_nb import OFFICIAL_EVAL, EvalConfig, evaluate_run
from lseg_nb.apps.notebook import ensure_run, figure_dir, metrics_table, show
from lseg_nb.config import TrainConfig, load_config
from lseg_nb.viz.segmentation import plot_examples, plot_per_class_iou

run = ensure_run(run_dir, steps=train_steps)
saved = load_config(TrainConfig, run / "config.json")
protocols = {
    "run": saved.eval,
    "single": EvalConfig(),
    "sliding": EvalConfig(mode="sliding"),
    "official": OFFICIAL_EVAL,
}
figures = figure_dir(run, "02_zero_shot_evaluation")

# %%
chosen = dataclasses.replace(protocols[protocol], amp=amp, calibrate_seen=calibrate_seen)
data = dataclasses.replace(saved.data, max_images=max_images)
result = evaluate_run(run, data, chosen, split, examples=n_examples)
print(f"protocol: {result.protocol_name}")
metrics_table(result)

# %% [markdown]
# ## Per-class IoU
# Orange bars (marked `*`) are unseen classes. In the generalised setting they compete with every seen label;
# in the unseen-only setting only with each other.

# %%
a, u = result.all_labels, result.unseen_only
fig = plot_per_class_iou(a.per_class_iou, a.class_names, result.unseen or (), "all labels (generalised)")
show(fig, save=figures / "per_class_iou_all_labels")
if u is not None:
    title = "unseen labels only (ZS3Net/SPNet-style)"
    fig = plot_per_class_iou(u.per_class_iou, u.class_names, range(len(u.class_names)), title)
    show(fig, save=figures / "per_class_iou_unseen_only")

# %% [markdown]
# ## Examples (all labels)

# %%
examples = [(e.image, e.pred, e.target) for e in result.examples]
show(plot_examples(examples, a.class_names, result.unseen or ()), save=figures / "examples")
