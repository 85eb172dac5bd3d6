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
# # 06 · Calibration: can the softmax confidences be trusted, for seen and unseen classes?
#
# LSeg's logits are cosine similarities times a fixed scale (1/0.07). Nothing ties that scale to the
# accuracy of the prediction, so the max-softmax confidence may be over- or under-confident, and differently
# for unseen classes. We collect per-pixel logits over **all labels** (generalised setting), fit one temperature
# on the validation split and report ECE / NLL / Brier on the test split before and after scaling, for all,
# seen and unseen pixels (grouped by their true class). ECE, MCE, accuracy and mean confidence are in %.
# Figures are also saved in `run_dir/figures/06_calibration/`.
#
# **What the fitted T means.** The test logits are divided by one number `T` before the softmax, fitted to
# minimise the negative log-likelihood (NLL) of the validation pixels. `T > 1` says the model was
# over-confident (scaling flattens its probabilities), `T < 1` under-confident; the argmax, hence every
# segmentation and IoU, is unchanged.
#
# **Why scaling can raise the test ECE** (it did on both datasets this notebook has been run on): `T` minimises
# NLL, not ECE. NLL is dominated by the few confidently wrong pixels, so the NLL-best `T` flattens every
# prediction to soften them, and the many correct pixels become under-confident: ECE, an average over the bulk
# of the confidence histogram, can then grow. One `T` is also shared by all classes, while seen and unseen pixels
# can be miscalibrated in different directions, so a `T` that helps one group can hurt the other; and `T` is
# fitted on validation pixels, whose mix of classes is not the test split's. Read the NLL column for what the fit
# optimised, ECE for what it did not.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
max_images = 40  # per split
pixels_per_image = 1000  # random labelled pixels per image
n_bins = 15
examples = [0, 1, 2]  # test images for the confidence maps
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import calibration_table, ensure_run, figure_dir, load_run, show
from lseg_nb.diagnostics import temperature_scaling
from lseg_nb.diagnostics.collect import collect_logits

run = load_run(ensure_run(run_dir, steps=train_steps))
figures = figure_dir(run, "06_calibration")
val = collect_logits(run.model, run.dataset("val"), run.class_names, max_images, pixels_per_image)
test = collect_logits(run.model, run.dataset("test"), run.class_names, max_images, pixels_per_image)
scaling = temperature_scaling(
    *val, *test, class_groups={"seen": run.seen, "unseen": run.unseen}, n_bins=n_bins
)
calibration_table(scaling)

# %% [markdown]
# ## Reliability diagrams (test split; top: T = 1, bottom: fitted T)

# %%
from lseg_nb.viz import plot_reliability

show(plot_reliability(scaling), save=figures / "reliability")

# %% [markdown]
# ## Confidence maps before and after temperature scaling: is low confidence where the mistakes are?
#
# The image once, then its confidence at T = 1 and at the fitted T; wrong pixels (prediction differs from the
# ground truth, void excluded) are outlined in red, and each title gives their share and mean confidence.
# Scaling by T keeps every prediction, so the outlines are the same in both maps.

# %%
import torch

from lseg_nb.diagnostics import confidence_map
from lseg_nb.diagnostics.collect import collect_examples
from lseg_nb.viz import plot_confidence_map

t = scaling.temperature
for ex in collect_examples(run.model, run.dataset("test"), run.class_names, examples):
    conf = torch.stack([confidence_map(ex.logits), confidence_map(ex.logits, t)])
    wrong = (ex.pred != ex.target) & (ex.target != 255)  # 255: void, not scored
    fig = plot_confidence_map(conf, ex.image, [f"image {ex.index}: T = 1", f"T = {t:.2f}"], errors=wrong)
    show(fig, save=figures / f"confidence_map_image_{ex.index}")
