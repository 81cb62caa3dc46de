"""Notebook 09's sliders in a real JupyterLab, driven by headless Chromium.

The unit tests (test_manipulation.py) drive the panels from Python; this one
checks the whole path a reader uses: JupyterLab renders the widgets, a slider
moved in the browser reaches the kernel, the kernel decodes a new image and
the browser shows it.

How it runs:
- notebook 09 is copied to a temporary folder by papermill with small
  parameters (a 20-step model in that folder's own ``runs/``), so the test
  trains nothing big and writes nothing in the repository but the screenshot;
- ``jupyter lab`` from this venv serves that folder on a free local port with
  a random token; its config, runtime files, user settings and workspaces
  live in the temporary folder too (settings: no news pop-up, every cell
  attached to the page), so the venv and ``~/.jupyter`` stay as they are;
- Chromium (``/usr/bin/chromium``, Debian package ``chromium``) is driven by
  the ``playwright`` package; ``playwright install`` is never needed;
- the test runs all cells through JupyterLab's Run menu, waits for the
  panel, presses the right-arrow key on the first slider and checks that the
  decoded image changed; the screenshot goes to ``outputs/widget_test.png``
  (git-ignored) and its path is printed.

Skipped (with the reason) when Chromium or playwright is missing.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "09_landmark_manipulation.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "outputs" / "widget_test.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# JupyterLab user settings: no news/update pop-up over the page, and every
# cell kept in the DOM (the default windowing detaches cells out of view).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
KERNEL_SECONDS = 420  # a fresh CI machine: kernel start, data, 20 training steps, the panels


def _run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, retried until the first code cell shows it is queued or done.

    Right after the page loads, JupyterLab may still be wiring its menus to
    the kernel session and drop the first click.
    """
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function("element => /\\[(\\*|\\d+)\\]/.test(element.textContent)",
                                   arg=first_prompt.element_handle(), timeout=20_000)
            return
        except Exception:
            page.keyboard.press("Escape")
    raise AssertionError(f"Run All Cells did not start the notebook after {attempts} attempts")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {seconds} s")


@pytest.fixture
def sync_playwright():
    """playwright's entry point, or a skip saying what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian/Ubuntu: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its browsers are not needed)")
    return sync_playwright


@pytest.fixture
def lab_server(sync_playwright, tmp_path):
    """A JupyterLab serving a small-parameter copy of notebook 09; yields the notebook's URL."""
    import nbformat
    import papermill

    for name, values in LAB_SETTINGS.items():
        path = tmp_path / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    served = tmp_path / "served"
    served.mkdir()
    small = {"steps": 20, "runs_root": str(tmp_path / "runs")}   # a 20-step model, kept in tmp_path
    copy = served / NOTEBOOK.name
    papermill.execute_notebook(str(NOTEBOOK), str(copy), parameters=small, prepare_only=True,
                               kernel_name="python3", log_output=False, progress_bar=False)
    # Without the saved outputs and widget state, every widget on the page comes from the live kernel.
    notebook = nbformat.read(copy, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, copy)
    port, token = _free_port(), secrets.token_hex(16)
    environment = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = open(tmp_path / "jupyter.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
         f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"],
        cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", process)
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
            process.wait(timeout=30)
        except Exception:
            process.terminate()
            process.wait(timeout=30)
        log.close()


@pytest.mark.browser
@pytest.mark.slow
def test_slider_in_jupyterlab_changes_the_decoded_image(sync_playwright, lab_server):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(lab_server)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=120_000)
            _run_all_cells(page)

            output = page.locator(".lmdis-manipulation-output").first
            traceback = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)").first
            output.or_(traceback).wait_for(state="visible", timeout=KERNEL_SECONDS * 1000)
            if traceback.is_visible():
                pytest.fail(f"a cell of the notebook failed in JupyterLab:\n{traceback.inner_text()}")
            output.scroll_into_view_if_needed()
            page.wait_for_function(
                "element => element.complete && element.naturalWidth > 0", arg=output.element_handle())
            before_source = output.get_attribute("src")
            before_pixels = output.screenshot()

            handle = page.locator(".lmdis-slider-dx1 .noUi-handle").first
            handle.focus()
            for _ in range(10):  # ten slider steps of 0.01: landmark 1 moves 0.1 of the side
                handle.press("ArrowRight")
            page.wait_for_function(
                "([element, source]) => element.getAttribute('src') !== source && element.complete",
                arg=[output.element_handle(), before_source], timeout=60_000)
            after_pixels = output.screenshot()
            readout = page.locator(".lmdis-slider-dx1 .widget-readout").first.inner_text()
        finally:
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
            print(f"screenshot: {SCREENSHOT}")
            browser.close()
    assert float(readout) == pytest.approx(0.1), f"the slider should read 0.10, reads {readout!r}"
    assert after_pixels != before_pixels, "the decoded image did not change on the page"
