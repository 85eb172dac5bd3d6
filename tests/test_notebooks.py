"""The notebooks: paired .py/.ipynb in sync, stored without outputs, and every one executes headless.

Execution uses papermill with small parameters. 01 trains a tiny run into a temporary folder once (module
fixture); every other notebook gets ``run_dir`` pointing there, so they also prove that artifacts travel through
run folders rather than kernel state. The first UMAP fit compiles numba code (about a minute on a busy CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
PY_DIR = NB_DIR / "py"  # the jupytext sources, out of a newcomer's way in JupyterLab
FORMATS = "ipynb,py//py:percent"  # notebooks/NN.ipynb <-> notebooks/py/NN.py (notebooks/jupytext.toml)
KERNEL = "python3"
TRAIN = "01_train"

# Small parameters per notebook (run_dir is added for every notebook but those in NO_RUN). `figures`: the fewest PNG
# outputs a successful run must show, so a notebook that silently draws nothing fails. `writes`: files the
# notebook must leave in the run folder (figures are saved as PNG files under figures/<notebook>/).
SMALL: dict[str, dict] = {
    "01_train": {"params": {"steps": 3, "batch_size": 4, "max_images": 8}, "figures": 1},
    "02_zero_shot_evaluation": {
        "params": {"max_images": 2, "n_examples": 2, "amp": "bf16"},
        "figures": 3,
        "writes": [
            "figures/02_zero_shot_evaluation/per_class_iou_all_labels.png",
            "figures/02_zero_shot_evaluation/per_class_iou_unseen_only.png",
            "figures/02_zero_shot_evaluation/examples.png",
        ],
    },
    "03_label_explorer": {
        "params": {"max_images": 3, "index": 1},
        "figures": 2,
        "writes": [
            "figures/03_label_explorer/label_query_image_1.png",
            "figures/03_label_explorer/similarity_maps_image_1.png",
        ],
    },
    "04_nearest_neighbours": {
        "params": {"max_images": 2, "per_class": 50, "max_total": 500},
        "figures": 2,
        "prints": ["'brick wall', 'zebra']"],  # the distractors default to the synthetic manifest's list
        "writes": [
            "figures/04_nearest_neighbours/neighbour_report.png",
            "figures/04_nearest_neighbours/confusion_vs_text_similarity.png",
        ],
    },
    "05_umap": {
        "params": {"max_images": 2, "max_pixels": 300, "n_epochs": 20, "n_neighbors": 5},
        "figures": 1,
        "writes": ["figures/05_umap/joint_umap.png"],
    },
    "06_calibration": {
        "params": {"max_images": 2, "pixels_per_image": 200, "examples": [0]},
        "figures": 2,
        "writes": [
            "figures/06_calibration/reliability.png",
            "figures/06_calibration/confidence_map_image_0.png",
        ],
    },
    "07_nearest_text_map": {
        "params": {"examples": [0]},
        "figures": 1,
        "writes": ["figures/07_nearest_text_map/nearest_text_image_0.png"],
    },
    "08_text_encoder_ablation": {
        "params": {
            "head_steps": 1,
            "head_batch_size": 2,
            "max_eval_images": 1,
            "encoders": ["random", "one_hot", "clip"],
        },
        "figures": 1,
        "writes": ["ablation/swap.json", "figures/08_text_encoder_ablation/swap.png"],
    },
    "09_official_checkpoints": {"params": {}, "figures": 0, "prints": ["no checkpoint given", "skipped"]},
    "10_training_free_baselines": {
        "params": {"max_images": 2, "n_examples": 1, "clip_model": "ViT-S-32"},
        "figures": 2,
        "prints": ["maskclip:ViT-S-32/none"],
        "writes": [
            "figures/10_training_free_baselines/examples_lseg.png",
            "figures/10_training_free_baselines/examples_maskclip.png",
        ],
    },
    "11_premise_test": {
        "params": {"permutations": 500},
        "figures": 1,
        "prints": ["sentence_transformers: rho =", "random: rho ="],
    },
    "12_prompts_and_names": {
        "params": {"max_images": 2, "templates": ["{}", "a photo of a {}."], "floss_top_n": 1},
        "figures": 0,
        "prints": ["renamed classes:", "spread of each class's IoU"],
    },
    "13_features": {
        "params": {"examples": [0, 1], "recipe": "openscene"},
        "figures": 2,
        "prints": ["nearest text == model prediction, per image"],
        "writes": [
            "features/13_features/features.json",
            "features/13_features/text_embeddings.npy",
            "features/13_features/image_1.npy",
            "figures/13_features/nearest_text_image_1.png",
        ],
    },
}
PAIRS = sorted(p.stem for p in PY_DIR.glob("*.py"))
NO_RUN = (TRAIN, "09_official_checkpoints", "11_premise_test")  # notebooks that take no run folder


def _sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_notebook_is_paired_and_has_small_parameters():
    ipynbs = sorted(p.stem for p in NB_DIR.glob("*.ipynb"))
    assert PAIRS == ipynbs, (
        "every notebooks/py/*.py needs its notebooks/*.ipynb (run `make notebooks`) and vice versa"
    )
    assert sorted(SMALL) == PAIRS, "add small test parameters for every notebook to SMALL"


@pytest.mark.parametrize("name", PAIRS)
def test_pair_in_sync_and_stripped(name):
    from jupytext.config import load_jupytext_config
    from jupytext.paired_paths import paired_paths

    py = jupytext.read(PY_DIR / f"{name}.py")
    ipynb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    assert _sources(py) == _sources(ipynb), (
        f"py/{name}.py and {name}.ipynb differ: run `jupytext --sync notebooks/py/{name}.py`"
    )
    assert ipynb.metadata.get("jupytext", {}).get("formats") == FORMATS
    assert load_jupytext_config(str(NB_DIR)).formats == [FORMATS]  # new notebooks pair the same way
    paths = [p for p, _ in paired_paths(str(NB_DIR / f"{name}.ipynb"), "ipynb", FORMATS)]
    assert paths == [str(NB_DIR / f"{name}.ipynb"), str(PY_DIR / f"{name}.py")]
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}.ipynb has stored outputs"
    tagged = [c for c in ipynb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"


# tags Jupyter's markdown renders as HTML on purpose; any other <word> would be eaten (e.g. "<colour> <pattern>")
HTML_TAGS = {"a", "b", "br", "code", "div", "em", "i", "img", "kbd", "p", "span", "strong", "sub", "sup"}


@pytest.mark.parametrize("name", PAIRS)
def test_markdown_shows_its_angle_brackets_and_no_cell_is_empty(name):
    import re

    nb = jupytext.read(PY_DIR / f"{name}.py")
    for i, cell in enumerate(nb.cells):
        assert cell.source.strip(), f"{name}: cell {i} is empty (delete it)"
        if cell.cell_type != "markdown":
            continue
        prose = re.sub(r"```.*?```|`[^`]*`", "", cell.source, flags=re.S)  # code shows < and > as typed
        eaten = [t for t in re.findall(r"</?([A-Za-z][\w-]*)[^<>]*>", prose) if t.lower() not in HTML_TAGS]
        assert not eaten, (
            f"{name}: markdown cell {i} has <{eaten[0]}>, which renders as an HTML tag: quote it in `code`"
        )


@pytest.mark.parametrize("name", PAIRS)
def test_small_parameters_exist(name):
    import papermill as pm

    declared = set(pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb")))
    wanted = set(SMALL[name]["params"]) | ({"run_dir"} if name not in NO_RUN else set())
    assert wanted <= declared, (
        f"{name}: parameters {sorted(wanted - declared)} are not in its parameters cell"
    )


def test_kernel_runs_this_python():
    """The kernel the notebooks name must be this interpreter (the venv with lseg_nb), checked by running it."""
    from nbclient import NotebookClient

    code = "import sys; print(sys.prefix); print(sys.executable)"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, kernel_name=KERNEL, timeout=120).execute()
    prefix, executable = nb.cells[0].outputs[0]["text"].split()
    # sys.prefix, not the resolved executable: a venv's python is a symlink to the base interpreter
    assert Path(prefix) == Path(sys.prefix), (
        f"kernel {KERNEL!r} runs {executable} (prefix {prefix}), not this environment's {sys.executable}: "
        f"run `{sys.executable} -m ipykernel install --sys-prefix`"
    )


def _execute(name: str, out_dir: Path, params: dict) -> nbformat.NotebookNode:
    import papermill as pm

    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(
        str(NB_DIR / f"{name}.ipynb"),
        str(out),
        parameters=params,
        kernel_name=KERNEL,
        cwd=str(NB_DIR),
        progress_bar=False,
        execution_timeout=300,
    )
    return nbformat.read(out, as_version=4)


def _figures(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="module")
def kernel_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("MPLBACKEND", "Agg")
        yield


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, kernel_env) -> tuple[Path, Path]:
    out_dir = tmp_path_factory.mktemp("notebooks")
    run_dir = out_dir / "run"
    nb = _execute(TRAIN, out_dir, {**SMALL[TRAIN]["params"], "run_dir": str(run_dir)})
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "config.json").is_file()
    assert (run_dir / "loss_curve.png").stat().st_size > 0
    assert _figures(nb) >= SMALL[TRAIN]["figures"]
    return run_dir, out_dir


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PAIRS if n != TRAIN])
def test_notebook_executes(name, trained_run):
    run_dir, out_dir = trained_run
    params = dict(SMALL[name]["params"])
    if name not in NO_RUN:
        params["run_dir"] = str(run_dir)
    mtime = (run_dir / "model.safetensors").stat().st_mtime_ns
    nb = _execute(name, out_dir, params)
    assert _figures(nb) >= SMALL[name]["figures"], f"{name} showed fewer figures than expected"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if name not in NO_RUN:
        assert "using the finished run" in text, f"{name} did not reuse the run folder it was given"
    assert (run_dir / "model.safetensors").stat().st_mtime_ns == mtime, f"{name} retrained the finished run"
    assert "NaN" not in text, (
        f"{name} shows NaN in a table (use notebook_table, which shows missing values as -)"
    )
    for expected in SMALL[name].get("prints", ()):
        assert expected in text, f"{name} did not print {expected!r}"
    for rel in SMALL[name].get("writes", ()):
        assert (run_dir / rel).is_file() and (run_dir / rel).stat().st_size > 0, (
            f"{name} did not write {rel} into its run folder"
        )
