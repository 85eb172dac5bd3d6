"""The documentation site builds with ``mkdocs build --strict`` (a broken link, anchor or API reference fails), every
module has an API page entry, and the README stays a short front page that links into it (issue 16)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _require_mkdocs() -> None:
    missing = [m for m in TOOLS if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the docs tools are not installed: {missing} (pip install -e '.[dev]')")
        pytest.skip(f"docs tools not installed: {missing} (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with --strict into a temporary folder (never into the checkout)."""
    _require_mkdocs()
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert build.returncode == 0, "mkdocs build --strict failed:\n" + (build.stdout + build.stderr)[-6000:]
    return out


def test_the_site_builds_strictly_with_the_api_reference(site):
    engine = (site / "api" / "engine" / "index.html").read_text()
    # the API pages are rendered from the docstrings, not left as `::: module` lines
    assert 'id="lseg_nb.engine.inference.predict_logits"' in engine
    assert ":::" not in engine
    assert (site / "errors" / "index.html").is_file()


def _modules() -> set[str]:
    pkg = REPO / "lseg_nb"
    return {
        ".".join(("lseg_nb", *p.relative_to(pkg).with_suffix("").parts))
        for p in pkg.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }


def test_every_module_has_an_api_entry():
    listed = set(
        re.findall(
            r"^::: (lseg_nb[\w.]*)\s*$", "".join(p.read_text() for p in (DOCS / "api").glob("*.md")), re.M
        )
    )
    assert not _modules() - listed, (
        f"modules without an API entry in docs/api/: {sorted(_modules() - listed)}"
    )
    assert not listed - _modules(), f"API entries of modules that do not exist: {sorted(listed - _modules())}"


def test_every_top_level_name_is_in_the_api_overview():
    import lseg_nb

    overview = (DOCS / "api" / "index.md").read_text()
    missing = [n for n in lseg_nb.__all__ if f"`lseg_nb.{n}`" not in overview]
    assert not missing, f"top-level names missing from docs/api/index.md: {missing}"


def _words(text: str) -> int:
    return len(text.split())


def test_readme_is_a_short_front_page():
    """At most 2,500 words; within the first 60 lines a Python quick start of at most ten lines that imports only
    top-level names."""
    text = README.read_text()
    assert _words(text) <= 2500, f"README.md has {_words(text)} words; move long-form text into docs/"
    head = "\n".join(text.splitlines()[:60])
    quick = re.search(r"```python\n(.*?)```", head, re.S)
    assert quick, "no ```python quick start within the first 60 lines of README.md"
    lines = [line for line in quick.group(1).splitlines() if line.strip()]
    assert len(lines) <= 10, lines
    imports = [line for line in lines if re.match(r"\s*(from|import) ", line)]
    assert imports and all(
        re.match(r"from lseg_nb import [\w, ]+$", line.split("#")[0].strip()) for line in imports
    )


def test_readme_links_into_the_docs_resolve(site):
    """Every link from the README into docs/ names an existing page and, with #anchor, an existing heading."""
    links = re.findall(r"\]\((docs/[^)\s]+)\)", README.read_text())
    assert len(links) >= 5, "the README should link into the docs"
    for link in links:
        page, _, anchor = link.partition("#")
        assert (REPO / page).is_file(), f"README links to missing {page}"
        if anchor:
            rel = Path(page).relative_to("docs").with_suffix("")
            html = site / (rel.parent if rel.name == "index" else rel) / "index.html"
            assert f'id="{anchor}"' in html.read_text(), f"README links to missing anchor {link}"


def test_training_free_settings_table_is_the_code():
    # defect 7 of issue 16: the documented per-dataset settings are the ones the suite runner uses
    from lseg_nb.config.suites import TRAININGFREE, get_settings

    text = (DOCS / "training-free.md").read_text()
    table = text.split("<!-- settings-table -->")[1].split("<!-- /settings-table -->")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()[2:]]
    by_key = {(r[0], r[1]): r[2:] for r in rows}
    for harness in ("sclip", "naclip"):
        for b in TRAININGFREE.benchmarks:
            s = get_settings(b.name, harness)
            short, windows, scale, prob, area, pamr = by_key.pop((b.column, harness))
            assert int(short) == s.short_side, (b.name, harness)
            assert (windows == "whole image") == (s.mode == "single"), (b.name, harness)
            assert float(scale) == s.logit_scale and float(prob) == s.prob_thd, (b.name, harness)
            assert (None if area == "–" else float(area)) == s.area_thd, (b.name, harness)
            assert int(pamr) == s.pamr_steps, (b.name, harness)
    assert not by_key, f"rows the code does not have: {sorted(by_key)}"
