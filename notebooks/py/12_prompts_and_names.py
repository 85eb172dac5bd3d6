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
# # 12 · What moves the numbers: prompt templates and class names
#
# An open-vocabulary score is a score of the model *and* of the texts it was given. This notebook changes only
# the texts, on the same images with the same protocol: each prompt template alone against all of them averaged,
# then each listed class renamed to each of its alternative names while everything else stays fixed. A spread of
# several points for one class means a paper's table is partly a table of names. Then FLOSS's training-free
# choice of templates per class, and Open mIoU, which gives partial credit to errors between similar classes.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
max_images = 16  # images scored per row (each row is one pass over them)
templates = ["{}", "a photo of a {}.", "a {} in the scene.", "there is a {} in the image."]
floss_top_n = (
    2  # templates kept per class (FLOSS keeps 4 of its 80; with 4 candidates that would be all of them)
)
# class (first name) -> other names to try; classes the run does not have are skipped
alternatives = {"aeroplane": ["airplane", "plane"], "body": ["person", "human body"], "bicycle": ["bike"],
                "red stripes": ["red striped pattern", "stripes"], "green dots": ["green polka dots"]}  # fmt: skip

# %%
import dataclasses

from lseg_nb.apps.notebook import ensure_run, load_run, metrics_table, notebook_table
from lseg_nb.diagnostics.prompts import floss_analysis, floss_rankings, renaming_analysis, template_analysis
from lseg_nb.engine.evaluate import eval_data, evaluate

run = load_run(ensure_run(run_dir))
data = eval_data(dataclasses.replace(run.config.data, max_images=max_images), split, run.model)
print(
    f"{run.config.data.dataset} {split}: {len(data.dataset)} images, first {max_images}; protocol {run.config.eval.describe()}"
)

# %% [markdown]
# ## Prompt templates (mIoU and per-class IoU, %)

# %%
rows = template_analysis(run.model, data, templates, run.config.eval)
table = [{"template": r.variant, "mIoU": r.miou, **r.per_class_iou} for r in rows]
notebook_table(table, fractions=list(table[0])[1:])

# %% [markdown]
# ## Class names (mIoU and the renamed classes' IoU, %)

# %%
chosen = {c: names for c, names in alternatives.items() if c in run.class_names}
print("renamed classes:", chosen or "none of the listed classes is in this run")
rows, spread = renaming_analysis(run.model, data, chosen, run.config.eval)
table = [{"names": r.variant, "mIoU": r.miou, **{c: r.per_class_iou[c] for c in chosen}} for r in rows]
print(
    {c: round(100 * s, 1) for c, s in spread.items()}, "= spread of each class's IoU over its names (points)"
)
notebook_table(table, fractions=list(table[0])[1:])

# %% [markdown]
# ## FLOSS: templates chosen per class without labels
#
# FLOSS (arXiv 2504.10487) classifies *unlabelled* images with each template alone and ranks the templates of a
# class by the mean entropy of the pixels they assign to it (confident first). Each class's expert uses its best
# templates for every class; a pixel takes the expert that claims its own class there. The ranking below runs on
# the validation images (their labels are never read); the rows score the test images.

# %%
unlabelled = eval_data(
    dataclasses.replace(run.config.data, max_images=max_images), run.config.data.val_split, run.model
)
ranking = floss_rankings(run.model, unlabelled, templates, run.config.eval)
kept = zip(ranking.class_names, ranking.selection(floss_top_n))
notebook_table(
    [{"class": c, "templates kept": " | ".join(t) if t else "(all: never predicted)"} for c, t in kept]
)

# %%
_, rows = floss_analysis(run.model, data, templates, run.config.eval, top_n=floss_top_n, ranking=ranking)
table = [{"classifier": r.variant, "mIoU": r.miou, **r.per_class_iou} for r in rows]
notebook_table(table, fractions=list(table[0])[1:])

# %% [markdown]
# ## Open mIoU: partial credit for near-misses
#
# Open mIoU (arXiv 2311.03352) counts a pixel of class *t* predicted as *p* as a fraction `S[p, t]` of a true
# positive, with `S` the similarity of the two classes, here from the model's own text encoder
# (`eval.open_similarity`; a CSV matrix can be given instead). A large gap to mIoU means many errors fall between
# classes the text encoder finds similar -- or that its similarities are generous (see docs/evaluation.md).

# %%
result = evaluate(run.model, data, dataclasses.replace(run.config.eval, bootstrap=0), progress=False)
metrics_table(result)
