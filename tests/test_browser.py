"""The label explorer in a real browser: JupyterLab on localhost driven by Playwright in headless Debian Chromium.

The test starts JupyterLab (random free port, random token, its own temporary root, config, data, runtime,
settings, workspace and IPython folders; the server and its kernel import this checkout's lseg_nb through
PYTHONPATH), opens a copy of notebooks/03_label_explorer.ipynb with small parameters and a tiny trained run, runs all cells,
then types labels, clicks a pixel, sets the temperature and uploads an image like a user, checking what the
browser shows after each step. Screenshots, the server log and the executed notebook are kept under ``$LSEG_NB_ARTIFACTS/browser`` (a pytest temporary folder
when unset); the folder is printed.

Chromium comes from Debian (``make test`` installs it when missing and run as root; never a downloaded browser
build). Without chromium or playwright the test skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "03_label_explorer.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for a quiet, deterministic page: no news toast over the notebook, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
STATE_CELL = (
    "import json\n"
    "w = explorer_widget\n"
    "print('STATE', json.dumps({'legend': w.legend_labels, 'error': w.error, 'pixel': w.pixel, 'top': w.top}))"
)
# Run All has finished when every code cell has a prompt number, or stopped at an error with the kernel idle.
RUN_ALL_DONE = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    if (prompts.length > 0 && prompts.every(e => /\\[\\d+\\]/.test(e.textContent))) return true;
    const idle = (document.querySelector('#jp-main-statusbar')?.textContent ?? '').includes('Idle');
    const errors = [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')];
    return idle && errors.some(e => e.textContent.includes('Traceback') || /\\w+Error/.test(e.textContent));
}"""
KERNEL_CELL = "import sys\nimport lseg_nb\n\nprint('KERNEL', sys.prefix, lseg_nb.__file__)"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium and the playwright package, checked before anything is started."""
    path = shutil.which("chromium")
    if path is None:
        _unavailable(
            "Debian's chromium is not installed: `apt-get install -y --no-install-recommends chromium` "
            "(make test does this when run as root)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed: pip install -e '.[dev]'")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    base = os.environ.get("LSEG_NB_ARTIFACTS")
    out = Path(base) / "browser" if base else tmp_path_factory.mktemp("browser-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 1-step run on the synthetic set (seconds on CPU), trained in this process."""
    from lseg_nb.apps.notebook import ensure_run

    return ensure_run(
        tmp_path_factory.mktemp("run") / "run", steps=1, max_images=8, progress=False, verbose=False
    )


def _notebook_copy(root: Path, run_dir: Path) -> None:
    """The repository notebook with papermill-style injected small parameters and two probe cells appended."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(REPO / "notebooks" / NOTEBOOK))
    nb = parameterize_notebook(nb, {"run_dir": str(run_dir), "max_images": 3, "index": 1})
    nb.cells += [nbformat.v4.new_code_cell(KERNEL_CELL), nbformat.v4.new_code_cell(STATE_CELL)]
    nbformat.write(nb, root / NOTEBOOK)


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory, tiny_run, artifacts):
    """A JupyterLab server on a free localhost port with its own folders: yields ``(url, root)``."""
    tmp = tmp_path_factory.mktemp("lab")
    names = ("root", "config", "data", "runtime", "settings", "workspaces", "ipython")
    dirs = {name: tmp / name for name in names}
    for d in dirs.values():
        d.mkdir()
    for rel, value in LAB_SETTINGS.items():
        path = dirs["settings"] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    _notebook_copy(dirs["root"], tiny_run)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        # the kernel must import this checkout's lseg_nb, whichever copy is installed in the environment
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={dirs['root']}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (artifacts / "jupyterlab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}: see {artifacts / 'jupyterlab.log'}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 120 s: see {artifacts / 'jupyterlab.log'}")
            time.sleep(0.5)
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}&reset", dirs["root"]
    finally:
        # the server's own process group: the server and the kernels it started, nothing else
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _legend(page) -> list[str]:
    return page.locator(".lseg-legend .lseg-legend-label").all_inner_texts()


def _top(page) -> list[tuple[str, float]]:
    rows = page.locator(".lseg-pixel .lseg-top-row")
    return [
        (
            r.locator(".lseg-top-label").inner_text(),
            float(r.locator(".lseg-top-prob").inner_text().rstrip("%")),
        )
        for r in rows.all()
    ]


def _type_labels(page, text: str) -> None:
    box = page.locator(".lseg-labels input")
    box.fill(text)
    box.press("Enter")  # the text box updates on Enter (continuous_update=False)


def _run_cell(page, index: int) -> str:
    """Run code cell ``index`` (Shift+Enter) again and return its output text once it has a new prompt number."""
    cell = page.locator(".jp-CodeCell").nth(index)
    prompt = cell.locator(".jp-InputArea-prompt")
    before = prompt.inner_text()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "([el, before]) => /\\[\\d+\\]/.test(el.textContent) && el.textContent !== before",
        arg=[prompt.element_handle(), before],
        timeout=60_000,
    )
    return cell.locator(".jp-OutputArea").inner_text()


def _kernel_state(page) -> dict:
    text = _run_cell(page, page.locator(".jp-CodeCell").count() - 1)
    return json.loads(text.split("STATE", 1)[1])


def _save_and_read(page, root: Path) -> nbformat.NotebookNode:
    path = root / NOTEBOOK
    before = path.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before:
        if time.monotonic() > deadline:
            pytest.fail("JupyterLab did not save the notebook within 30 s of Ctrl+S")
        time.sleep(0.2)
    return nbformat.read(path, as_version=4)


def test_label_explorer_in_jupyterlab(chromium, lab, artifacts, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    with capsys.disabled():
        print(f"\n[browser test] screenshots and logs in {artifacts}")
    url, root = lab
    problems: list[str] = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh, empty user-data-dir
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1100},
        )
        page = ctx.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

        def shot(name: str) -> None:
            """The widget when it is on the page (scrolled into view), else the whole page."""
            widget = page.locator(".lseg-explorer")
            target = widget if widget.count() == 1 and widget.is_visible() else page
            target.screenshot(path=str(artifacts / f"{name}.png"))

        try:
            page.goto(url)
            # a cold JupyterLab first builds the page, then starts the kernel: run nothing before it is idle
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=120_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.wait_for_function(RUN_ALL_DONE, timeout=180_000)
            shot("1-run-all")
            saved = _save_and_read(page, root)
            shutil.copy(root / NOTEBOOK, artifacts / f"executed-{NOTEBOOK}")
            errors = [
                o for c in saved.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
            ]
            assert not errors, "the kernel raised:\n" + "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
            kernel = next(
                o.text for c in saved.cells for o in c.get("outputs", []) if "KERNEL" in o.get("text", "")
            )
            prefix, module = kernel.split()[1:3]
            assert Path(prefix) == Path(sys.prefix), f"the kernel runs {prefix}, not this environment"
            assert Path(module).is_relative_to(REPO), (
                f"the kernel imported {module}, not this checkout's lseg_nb"
            )

            # the widget rendered, with the notebook's labels in its key and no message
            explorer = page.locator(".lseg-explorer")
            expect(explorer).to_be_visible(timeout=30_000)
            expect(page.locator(".lseg-legend .lseg-legend-label")).to_have_text(
                ["red", "green", "blue", "yellow"]
            )
            expect(page.locator("img.lseg-overlay")).to_be_visible()
            expect(page.locator("img.lseg-heatmaps")).to_be_visible()
            assert page.locator(".lseg-message").inner_text().strip() == ""

            # typing labels changes the key to exactly those labels
            _type_labels(page, "sky, grass, stripes")
            expect(page.locator(".lseg-legend .lseg-legend-label")).to_have_text(["sky", "grass", "stripes"])
            shot("2-typed-labels")

            # a click on the overlay queries that pixel: 96 px image shown 4x, so (x=101, y=62) is pixel (15, 25)
            page.locator("img.lseg-overlay").click(position={"x": 101, "y": 62})
            expect(page.locator(".lseg-pixel .lseg-top-row")).to_have_count(3, timeout=30_000)
            expect(page.locator(".lseg-pixel")).to_contain_text("pixel (y=15, x=25)")
            top = _top(page)
            assert {lab for lab, _ in top} == {"sky", "grass", "stripes"}
            assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
            assert sum(p for _, p in top) == pytest.approx(100.0, abs=0.2)  # all 3 labels: shares of 100 %
            shot("3-pixel-query")
            readout = page.locator(".lseg-temperature .widget-readout")  # type a temperature into the slider
            readout.click()
            page.keyboard.press("Control+a")
            page.keyboard.type("5")
            page.keyboard.press("Enter")
            expect(page.locator(".lseg-pixel")).to_contain_text("temperature 5.00")
            hot = _top(page)
            assert [lab for lab, _ in hot] == [lab for lab, _ in top] and hot[0][1] < top[0][1]  # flatter
            state = _kernel_state(page)  # the kernel agrees with what the browser shows
            assert state["legend"] == ["sky", "grass", "stripes"] and state["error"] is None
            assert state["pixel"] == [15, 25] and [t[0] for t in state["top"]] == [lab for lab, _ in top]
            assert [round(100 * t[1], 1) for t in state["top"]] == [p for _, p in hot]

            # more than five labels: the pixel keeps its place and lists its top five
            seven = ["sky", "grass", "stripes", "dots", "red", "water", "road"]
            _type_labels(page, ", ".join(seven))
            expect(page.locator(".lseg-legend .lseg-legend-label")).to_have_text(seven)
            expect(page.locator(".lseg-pixel .lseg-top-row")).to_have_count(5)
            assert {lab for lab, _ in _top(page)} <= set(seven)

            # a repeated label: one message in the widget, no key, no traceback
            _type_labels(page, "sky, sky")
            expect(page.locator(".lseg-message")).to_contain_text("'sky' is given twice")
            expect(page.locator(".lseg-legend .lseg-legend-label")).to_have_count(0)
            assert "Traceback" not in page.locator(".lseg-message").inner_text()
            shot("4-repeated-label")
            _type_labels(page, "cow, sheep")
            expect(page.locator(".lseg-legend .lseg-legend-label")).to_have_text(["cow", "sheep"])
            expect(page.locator(".lseg-message")).to_have_text("")
            shot("5-recovered")

            # the upload button: a 60x80 PNG becomes a new, selected image (shown 4x: 320x240 px)
            upload = tmp_path / "two-halves.png"
            rgb = np.zeros((60, 80, 3), np.uint8)
            rgb[:, 40:] = (200, 30, 30)
            Image.fromarray(rgb).save(upload)
            heatmaps = page.locator("img.lseg-heatmaps").element_handle()
            square = page.evaluate("el => [el.naturalWidth, el.naturalHeight]", heatmaps)
            with page.expect_file_chooser() as chooser:  # the button opens the browser's file dialog
                page.locator(".lseg-upload").click()
            chooser.value.set_files(str(upload))
            expect(page.locator(".lseg-picker select")).to_have_value("two-halves.png", timeout=30_000)
            page.wait_for_function(
                "el => el.naturalWidth === 320 && el.naturalHeight === 240",
                arg=page.locator("img.lseg-overlay").element_handle(),
                timeout=30_000,
            )
            page.wait_for_function(  # heatmaps of the new 60x80 image: a wider figure than of the 96x96 one
                "([el, before]) => el.complete && el.naturalHeight > 0 && el.naturalHeight < before[1]",
                arg=[heatmaps, square],
                timeout=30_000,
            )
            expect(page.locator(".lseg-legend .lseg-legend-label")).to_have_text(["cow", "sheep"])
            shot("6-uploaded")
        except Exception:
            shot("failure")
            raise
        finally:
            ctx.close()
    assert not problems, "\n".join(problems)
    assert not re.search(r"Traceback|Exception in comm", (artifacts / "jupyterlab.log").read_text()), (
        f"the server log shows a kernel-side exception: see {artifacts / 'jupyterlab.log'}"
    )
