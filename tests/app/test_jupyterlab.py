"""The app's components inside a real JupyterLab, in a real browser, offline.

A ``jupyter lab`` server on a free loopback port (its own config, data and settings folders,
so nothing of this machine's Jupyter setup leaks in) opens ``notebooks/app.ipynb``; Chromium
runs all its cells. The canvas of ``workbench.show`` must draw in the cell's output, answer a
click (a round trip through the kernel), and run the flow in the kernel from its *Run* tab,
with every request of the page going to the local server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ROOT, free_port, save_shot
from .test_browser import browser, tab, text_of

__all__ = ["browser"]  # the fixture, shared with the main browser module

pytest.importorskip("jupyterlab", reason="the JupyterLab test needs the notebook extra (jupyterlab)")

NOTEBOOK = ROOT / "notebooks" / "app.ipynb"


class Lab:
    """A running JupyterLab: its base URL and the folder it serves."""

    def __init__(self, url: str, root: Path, proc: subprocess.Popen[str]) -> None:
        self.url, self.root, self.proc = url, root, proc


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lab")
    root = home / "work"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    # No news pop-up over the page (it would fetch nothing offline, but covers the output).
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    port = free_port()
    log = home / "lab.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            # window.jupyterapp: the test runs cells through Lab's own command, not key presses.
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=root,
        env=env,
        stdout=log.open("w"),  # a pipe nobody reads would fill up and stall the server
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/api/status", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("jupyter lab did not answer within 90 s")
        time.sleep(0.3)
    yield Lab(url, root, proc)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_show_draws_answers_and_runs_in_jupyterlab(browser: Any, lab: Lab, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}")
    # Run only once the notebook's kernel is connected and idle (earlier, Lab asks for a kernel).
    page.wait_for_function(
        """() => {
            const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const kernel = nb?.sessionContext?.session?.kernel;
            return !!nb?.sessionContext?.isReady && kernel?.connectionStatus === "connected"
                && kernel.status === "idle";
        }""",
        timeout=90_000,
    )
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # The canvas draws in the output of workbench.show: triage's four nodes, inputs, outputs.
    output = page.locator(".jp-OutputArea")
    try:
        output.locator('.react-flow__node[data-id="classify"]').wait_for(timeout=120_000)
    except Exception:
        page.screenshot(path="/tmp/labfail.png")
        raise
    assert output.locator(".react-flow__node").count() == 6
    # The later cells ran too: the rails report and a run from code.
    page.locator(".jp-OutputArea-output").filter(has_text="no_email").first.wait_for()
    page.locator(".jp-OutputArea-output").filter(has_text="'category': 'billing'").first.wait_for()
    assert page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0

    # A click on a node reaches the kernel and comes back as the inspector's text.
    # Clicked again until it lands: under load the canvas may still be fitting its view (the
    # nodes move) when the first click comes.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the browser fixture checked it

    node = output.locator('.react-flow__node[data-id="prioritise"]')
    inspector = page.locator(".jp-OutputArea .wb-text").filter(has_text="prioritise · tool").first
    for _ in range(10):
        node.click()
        try:
            inspector.wait_for(timeout=6_000)
            break
        except PlaywrightTimeout:
            continue
    inspector.wait_for()

    # The run view runs the flow in the kernel and shows outputs and rail verdicts.
    tab(page, "Run").click()
    page.locator(".wb-run-form textarea").fill("Charged twice, urgent! mail me at a@b.example")
    page.locator(".wb-run-form select").select_option("enterprise")
    page.locator(".wb-run-button button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=60_000)
    outputs = text_of(page, ".wb-run-outputs")
    assert '"category": "billing"' in outputs and "a@b.example" not in outputs
    assert "pass  no_email" in text_of(page, ".wb-run-rails")
    page.locator(".wb-run-status").scroll_into_view_if_needed()
    save_shot(page, shots, "30-jupyterlab-show")

    hosts = {r.split("/")[2] for r in requests if r.startswith("http")}
    assert hosts == {lab.url.split("/")[2]}, (
        f"requests left the local server: {[r for r in requests if lab.url not in r]}"
    )
    context.close()
