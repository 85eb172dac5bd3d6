"""Packaging promises: environment.yml matches pyproject.toml; the README starts with the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + spec.replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert {_norm(r) for r in pip} == wanted


def test_core_packages_are_required():
    deps = {
        _norm(r).split("<")[0].split(">")[0].split("=")[0]
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert {
        "torch",
        "open-clip-torch",
        "timm",
        "jupyterlab",
        "ipywidgets",
        "seaborn",
        "scikit-learn",
        "umap-learn",
    } <= deps


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
