"""A real ``workbench serve`` on a free loopback port, a temp cwd and a temp trace database.

Browser tests drive Debian's Chromium (/usr/bin/chromium, flags in ``browser.py``) with
Playwright; where it is missing they skip with the reason (and CI, which turns every skip
into a failure, fails).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("panel", reason="the app tests need the app extra (panel, panel-reactflow)")
pytest.importorskip("panel_reactflow", reason="the app tests need the app extra (panel-reactflow)")

ROOT = Path(__file__).resolve().parents[2]
# Set WORKBENCH_SCREENSHOTS to a folder to keep a copy of every screenshot there.
SHOTS_COPY = os.environ.get("WORKBENCH_SCREENSHOTS")

# A flow whose texts try to run script in the page: every one must show as text.
EVIL_FLOW = """\
flow: evil
version: 1
description: "<script>window.__pwned=1</script><img src=x onerror=\\"window.__pwned=2\\">"
inputs: {text: str}
outputs: {text: str}
nodes:
  shout:
    kind: tool
    tool: workbench.examples.support:redact
    inputs: {ticket: str}
    outputs: {text: str}
wires:
  - text -> shout.ticket
  - shout.text -> text
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running ``workbench serve``: its base URL, working directory and trace database."""

    def __init__(self, url: str, cwd: Path, db: Path, proc: subprocess.Popen[str]) -> None:
        self.url, self.cwd, self.db, self.proc = url, cwd, db, proc


def start_server(cwd: Path, db: Path, *extra: str) -> Served:
    """Start ``workbench serve`` and wait until its API answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WORKBENCH_SINK", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "serve", "--port", str(port), "--db", str(db), *extra],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"workbench serve exited {proc.returncode}: {proc.stdout.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(url + "/api/flows", timeout=1).status_code == 200:
                return Served(url, cwd, db, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("workbench serve did not answer within 60 s")


def stop_server(served: Served) -> str:
    """Stop the server (SIGTERM) and return what it printed."""
    served.proc.terminate()
    try:
        out, _ = served.proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        out, _ = served.proc.communicate()
    return out


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("serve-cwd")
    (cwd / "evil.flow.yaml").write_text(EVIL_FLOW, encoding="utf-8")
    served = start_server(cwd, cwd / "traces.duckdb")
    yield served
    stop_server(served)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (a pytest temp folder; also copied for people to look at)."""
    return tmp_path_factory.mktemp("screenshots")


def save_shot(page: object, shots: Path, name: str) -> Path:
    """Screenshot the page into ``shots`` (and into ``$WORKBENCH_SCREENSHOTS`` when set)."""
    path = shots / f"{name}.png"
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    if SHOTS_COPY:
        Path(SHOTS_COPY).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS_COPY) / path.name)
    return path
