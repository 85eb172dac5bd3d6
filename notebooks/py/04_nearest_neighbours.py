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
# # 04 · Do pixels land near their own label text?
#
# LSeg's zero-shot claim rests on geometry: a pixel of an unseen class should lie nearer to the text of its own
# label than to any other text, although that text was never a training target. Here we sample labelled pixel
# embeddings from the test split (stratified per class, bounded memory) and measure, per class:
#
# * **top-1**: share of pixels whose nearest text among **all texts** (the class names plus the distractor
#   words) is their own label;
# * **rank** of the own label text among all texts (1 = nearest), and the texts nearest to the class's pixels;
# * **mistaken**: share of pixels whose nearest **class name** (distractors left out) is another class's;
# * for unseen classes, which **seen** class name wrongly attracts their pixels, and its share of the mistakes.
#
# So the table uses two vocabularies, and its headers say which: all texts, or the class names only. Shares
# are in %.
#
# The Spearman test asks whether pixels are confused with labels whose *texts* are similar (rho > 0; its p-value
# permutes class identities, a Mantel test, because class pairs are not independent): the
# premise of zero-shot transfer through the text space.
#
# The distractor words default to the dataset's own list (`distractors` in its manifest, e.g. generic words such
# as "animal" or "vehicle" for MSRC-v2); set `distractors` to your own comma-separated words, or `""` for none.
# Figures are also saved in `run_dir/figures/04_nearest_neighbours/`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a finished run; trained with the small default when missing
split = "test"
max_images = 40
per_class = 500  # pixels per class at most
max_total = 8000
distractors = None  # None: the dataset's manifest list; or comma-separated words ("" for none)
train_steps = None  # steps if the run has to be trained first (None: the demo's default)

# %%
from lseg_nb.apps.notebook import distractor_words, ensure_run, figure_dir, load_run, neighbour_table, show
from lseg_nb.diagnostics import neighbour_analysis
from lseg_nb.diagnostics.collect import collect_pixel_embeddings
from lseg_nb.viz import plot_confusion_vs_similarity, plot_neighbour_report

run = load_run(ensure_run(run_dir, steps=train_steps))
emb, lab = collect_pixel_embeddings(run.model, run.dataset(split), max_images, per_class, max_total)
words = distractor_words(run, distractors)
print(f"{len(lab)} labelled pixels sampled; unseen classes: {run.labels.unseen_names}; distractors: {words}")

# %%
enc = run.model.encode_text
report = neighbour_analysis(
    emb,
    lab,
    enc(run.class_names),
    run.class_names,
    run.seen,
    run.unseen,
    distractor_emb=enc(words),
    distractor_names=words,
)
neighbour_table(report)

# %%
print(
    f"top-1 among all texts: seen {report.group_top1('seen'):.1%}, unseen {report.group_top1('unseen'):.1%}; "
    f"Spearman rho {report.spearman_rho:.2f} (Mantel permutation p={report.spearman_p:.2g}, {report.n_pairs} pairs)"
)
figures = figure_dir(run, "04_nearest_neighbours")
show(plot_neighbour_report(report), save=figures / "neighbour_report")
show(plot_confusion_vs_similarity(report), save=figures / "confusion_vs_text_similarity")
