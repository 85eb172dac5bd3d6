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
# # 01 · Train LSeg on a zero-shot fold
#
# LSeg embeds every **pixel** and every **label text** in one space: a frozen text encoder turns label strings
# into vectors, a dense image encoder (backbone + DPT decoder) produces one vector per pixel, and training pulls
# each pixel towards the text of its class with a temperature-scaled softmax over the label set.
#
# This notebook trains the small CPU model (`lseg_small_cpu`: ResNet-18 + DPT decoder, offline MiniLM text
# encoder) on the offline `synthetic_textures` set (16 classes named `<colour> <pattern>`, e.g. "red stripes"). With `fold = 0`,
# four colour/pattern combinations are **unseen**: their pixels are ignored during training, so they are never
# targets and later notebooks can test zero-shot transfer to them.
#
# Everything goes into `run_dir` (config, environment, metrics log, checkpoints, `model.safetensors`); the
# other notebooks read that folder, never this kernel's state. Re-running resumes or reuses the run; the
# defaults are the same run as `make demo` (`runs/demo`).
#
# **On a GPU** the same config runs unchanged (`device="auto"` picks CUDA). Set `amp = "bf16"` (or `"fp16"`,
# with a gradient scaler) for mixed precision, and for several GPUs launch the saved config with DDP:
# `torchrun --nproc_per_node 4 -m lseg_nb train --config runs/demo/config.json --run-dir runs/demo_ddp`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # paths are relative to notebooks/
dataset = "synthetic_textures"  # or "msrc_v2" (../shared/datasets/msrc_v2 or $LSEG_NB_DATA)
fold = 0  # zero-shot fold whose unseen classes are never training targets (None: all seen)
steps = 250
batch_size = 8
max_images = None  # cap per split, for smoke runs
amp = "none"  # "bf16" / "fp16" on a GPU

# %%
from lseg_nb.apps.notebook import notebook_config, notebook_table, run_files, show
from lseg_nb.apps.pipeline import train_run
from lseg_nb.data.experiment import make_experiment
from lseg_nb.engine.runs import MetricsLog
from lseg_nb.viz.segmentation import plot_loss_curve

cfg = notebook_config(run_dir, steps, max_images, batch_size, dataset, fold, amp=amp)
labels = make_experiment(cfg.data).labels
print(f"{len(labels.class_names)} classes; unseen (never training targets): {labels.unseen_names}")

# %% [markdown]
# ## Train
# A progress bar shows the loss; `checkpoints/last.pt` is written atomically every `checkpoint_every` steps,
# so an interrupted run continues exactly where it stopped when this cell runs again. It ends with a summary
# (steps, time, final loss, the next command) and writes `loss_curve.png` into the run folder.

# %%
summary = train_run(cfg)
print(summary.text())
run = summary.run_dir

# %% [markdown]
# ## Loss curve and run folder

# %%
show(plot_loss_curve(MetricsLog(run / "metrics.jsonl").read(), run.name))

# %%
notebook_table(run_files(run))
