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
