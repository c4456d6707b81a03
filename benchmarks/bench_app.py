"""Benchmark: the workbench app in a real browser (Playwright driving Chromium).

    python benchmarks/bench_app.py [--nodes 200] [--connects 6] [--run-nodes 1000]
        [--no-run | --run-only] [--chromium /usr/bin/chromium] [--baseline-root DIR]

Starts ``workbench serve`` on a free loopback port (temp cwd and trace database) holding a
generated chain of ``--nodes`` tool nodes, and beside it, as the peer, a bare Panel page
(one Markdown pane) served the same way. Prints:

- first render: page load until the canvas shows its first node (triage, the default flow),
  and the bare Panel page's load until its text shows (the floor any Panel app pays);
- the big flow: picking it until all its nodes are in the page; the same for the
  ``--run-nodes`` flow (1,000 nodes);
- drag response: a node dragged 120 px (20 mouse steps) until the browser shows it moved;
- connect response: a wire dragged between two ports (10 mouse steps) until the server's
  "connected" message comes back, and the part of it from releasing the mouse (a round
  trip through the Python document and a patch of the page): in the big flow (zoomed in
  on its middle; the median of ``--connects`` connects, each replacing a wire) and in
  triage. Two clocks: Playwright's (from before it sends the release until it finds the
  text; its own round trips included) and the page's (the mouseup event's time stamp
  until the first animation frame that has the text in the page: what a person sees).

- a ``--run-nodes`` (1,000) tool-only run in the run view: from the Run click until the
  status shows ``ok``, and until the canvas shows the last node done (its ring or tint),
  against the same run without the app (``Executor`` with a trace writer in a plain
  process: the peer); meanwhile the page's longest main-thread stall (a 10 ms timer's
  lateness), its longest gap between animation frames, and the slowest answer of the
  server to ``GET /api/flows`` polled every 50 ms (the run shares its loop).
  ``--run-only`` measures this part alone.

``--no-run`` leaves the run out (canvas figures only).
``--baseline-root DIR`` measures another checkout first in the same run (same browser,
same peer), e.g. ``git archive BASE | tar -x -C /tmp/base``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.app.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the flags the tests use)
from tests.app.chain import chain_flow  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def start_app(root: Path, cwd: Path, port: int, db: str) -> subprocess.Popen[bytes]:
    """``workbench serve triage chain.flow.yaml`` with the code of ``root`` first on the path."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "serve",
            "triage",
            "chain.flow.yaml",
            "runchain.flow.yaml",
            "--port",
            str(port),
            "--db",
            db,
        ],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(page: Any, url: str, nodes: int, connects: int, huge: int) -> dict[str, float]:
    """First render, big flow, drag and connect on the app at ``url`` (warmed once first)."""
    page.goto(url)
    page.locator(".react-flow__node").first.wait_for(timeout=60_000)
    t = time.perf_counter()
    page.goto(url)
    page.locator(".react-flow__node").first.wait_for()
    first_s = time.perf_counter() - t

    t = time.perf_counter()
    page.locator(".wb-picker select").select_option("chain")
    page.locator(f'.react-flow__node[data-id="n{nodes - 1}"]').wait_for(state="attached", timeout=120_000)
    big_s = time.perf_counter() - t
    drawn = page.locator(".react-flow__node").count()
    big_connects = connects_in_chain(page, nodes, connects)

    t = time.perf_counter()
    page.locator(".wb-picker select").select_option("runchain")
    page.locator(f'.react-flow__node[data-id="n{huge - 1}"]').wait_for(state="attached", timeout=600_000)
    huge_s = time.perf_counter() - t

    page.locator(".wb-picker select").select_option("triage")
    node = page.locator('.react-flow__node[data-id="classify"]')
    node.wait_for()
    box = node.bounding_box()
    before = node.get_attribute("style")
    t = time.perf_counter()
    page.mouse.move(box["x"] + 20, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + 20, box["y"] + 130, steps=20)
    page.mouse.up()
    page.wait_for_function(
        "([el, old]) => el.getAttribute('style') !== old", arg=[node.element_handle(), before]
    )
    drag_s = time.perf_counter() - t

    page.get_by_role("button", name="+ tool").click()
    page.locator('.react-flow__node[data-id="tool1"]').wait_for()
    page.locator(".react-flow__controls-fitview").click()
    page.wait_for_timeout(300)
    src = page.locator('.react-flow__handle.source[data-nodeid="redact"][data-handleid="text"]')
    dst = page.locator('.react-flow__handle.target[data-nodeid="tool1"][data-handleid="text"]')
    a, b = src.bounding_box(), dst.bounding_box()
    whole, answer, seen = connect(page, a, b, "connected redact.text")
    return {
        "first": first_s,
        "big": big_s,
        "huge": huge_s,
        "drawn": drawn,
        "drag": drag_s,
        "connect": whole,
        "answer": answer,
        "seen": seen,
        "big_connect": statistics.median(c[0] for c in big_connects),
        "big_answer": statistics.median(c[1] for c in big_connects),
        "big_seen": statistics.median(c[2] for c in big_connects),
    }


# Before a connect: note the mouseup's time stamp, then look for the answer in every
# animation frame (the message pane's text sits in a shadow root).
SEEN_START = """(answer) => {
  const find = (root) => {
    const hit = root.querySelector('.wb-canvas-message');
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      const inner = el.shadowRoot && find(el.shadowRoot);
      if (inner) return inner;
    }
    return null;
  };
  const host = find(document);
  const text = () => (host.shadowRoot ? host.shadowRoot.textContent : '') + host.textContent;
  const s = window.__seen = {up: null, shown: null};
  window.addEventListener('mouseup', (e) => { s.up = e.timeStamp; }, {capture: true, once: true});
  const frame = () => {
    if (s.up !== null && text().includes(answer)) { s.shown = performance.now(); return; }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}"""
SEEN_MS = "() => window.__seen.shown - window.__seen.up"


def connect(page: Any, a: dict[str, float], b: dict[str, float], answer: str) -> tuple[float, float, float]:
    """Drag a wire from box ``a`` to box ``b`` until ``answer`` shows.

    Seconds of the whole gesture and from the release, by Playwright's clock, and from the
    mouseup to the first frame with ``answer``, by the page's.
    """
    page.evaluate(SEEN_START, answer)
    t = time.perf_counter()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=10)
    released = time.perf_counter()
    page.mouse.up()
    page.locator(".wb-canvas-message").get_by_text(answer).wait_for()
    done = time.perf_counter()
    page.wait_for_function("() => window.__seen.shown !== null")
    return done - t, done - released, page.evaluate(SEEN_MS) / 1000


def middle_node(page: Any, nodes: int) -> int:
    """The chain node nearest the canvas's centre with two neighbours each side in its row.

    The layout wraps a long chain into rows: zoomed in on this node, the wires rewired
    around it start and end on the screen.
    """
    centres = page.locator(".react-flow__node").evaluate_all(
        "es => es.map(e => { const r = e.getBoundingClientRect(); "
        "return [e.dataset.id, r.x + r.width / 2, r.y + r.height / 2]; })"
    )
    at = {str(n): (x, y) for n, x, y in centres}
    pane = page.locator(".react-flow").first.bounding_box()
    cx, cy = pane["x"] + pane["width"] / 2, pane["y"] + pane["height"] / 2
    ok = [
        i
        for i in range(2, nodes - 2)
        if all(abs(at[f"n{j}"][1] - at[f"n{i}"][1]) < 1 for j in (i - 2, i + 2))
    ]
    return min(ok, key=lambda i: (at[f"n{i}"][0] - cx) ** 2 + (at[f"n{i}"][1] - cy) ** 2)


def connects_in_chain(page: Any, nodes: int, count: int) -> list[tuple[float, float, float]]:
    """Zoom in on the middle of the chain and rewire ``count`` of its ports (each replaces a wire)."""
    mid = middle_node(page, nodes)
    box = page.locator(f'.react-flow__node[data-id="n{mid}"]').bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    viewport = page.locator(".react-flow__viewport")
    for _ in range(60):  # the wheel zooms around the mouse
        style = viewport.get_attribute("style") or ""
        found = re.search(r"scale\(([0-9.]+)\)", style)
        if found and float(found.group(1)) >= 0.9:
            break
        page.mouse.wheel(0, -200)
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    out = []
    # Each wire into a port its source does not feed yet: every connect replaces a wire.
    pairs = [
        (mid - 1, mid + 1),
        (mid - 2, mid),
        (mid, mid + 2),
        (mid, mid + 1),
        (mid - 1, mid),
        (mid + 1, mid + 2),
    ]
    for src, dst in (pairs * count)[:count]:
        a = page.locator(f'.react-flow__handle.source[data-nodeid="n{src}"][data-handleid="text"]')
        b = page.locator(f'.react-flow__handle.target[data-nodeid="n{dst}"][data-handleid="ticket"]')
        answer = f"connected n{src}.text -> n{dst}.ticket"
        out.append(connect(page, a.bounding_box(), b.bounding_box(), answer))
    return out


# Started in the page before the run: a 10 ms timer and animation frames note their lateness.
PROBE_START = """() => {
  const s = window.__probe = {on: true, stall: 0, frameGap: 0, slowFrames: 0, frames: 0};
  let last = performance.now();
  const tick = () => {
    const now = performance.now();
    s.stall = Math.max(s.stall, now - last - 10);
    last = now;
    if (s.on) setTimeout(tick, 10);
  };
  setTimeout(tick, 10);
  let prev = null;
  const frame = (t) => {
    if (prev !== null) {
      s.frameGap = Math.max(s.frameGap, t - prev);
      if (t - prev > 100) s.slowFrames += 1;
    }
    s.frames += 1;
    prev = t;
    if (s.on) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}"""
PROBE_STOP = "() => { window.__probe.on = false; return window.__probe; }"
# Whether the node with this id shows a run mark (a ring or a tint), in whatever shadow root.
MARKED = """(id) => {
  const find = (root) => {
    const hit = root.querySelector(`.react-flow__node[data-id="${id}"]`);
    if (hit) return hit;
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) { const inner = find(el.shadowRoot); if (inner) return inner; }
    }
    return null;
  };
  const node = window.__marked_node || (window.__marked_node = find(document));
  if (!node) return false;
  const style = getComputedStyle(node);
  return style.boxShadow !== "none" || style.backgroundImage !== "none";
}"""


def poll_server(url: str, stop: threading.Event, worst: list[float]) -> None:
    """GET ``url`` every 50 ms until ``stop``; the slowest answer goes in ``worst[0]``."""
    while not stop.is_set():
        t = time.perf_counter()
        with contextlib.suppress(OSError):  # no answer within the timeout: counted as that long
            urllib.request.urlopen(url, timeout=60).close()
        worst[0] = max(worst[0], time.perf_counter() - t)
        stop.wait(0.05)


def measure_run(page: Any, url: str, nodes: int, timeout_s: float) -> dict[str, float]:
    """A ``nodes``-node tool-only run from the run view, with the page and server probed.

    A run whose ``ok`` does not show within ``timeout_s`` has ``wall`` = inf.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url)
    page.locator(".react-flow__node").first.wait_for(timeout=60_000)
    page.locator(".wb-picker select").select_option("runchain")
    page.locator(f'.react-flow__node[data-id="n{nodes - 1}"]').wait_for(state="attached", timeout=600_000)
    form = page.locator(".wb-run-form textarea")
    for _ in range(60):  # the side tabs of the flow shown before may linger a moment
        page.locator(".bk-tab").filter(has_text="Run").first.click()
        if form.is_visible():
            break
        page.wait_for_timeout(500)
    form.fill("mail me at a@b.example")
    page.wait_for_timeout(500)
    page.evaluate(PROBE_START)
    stop, worst = threading.Event(), [0.0]
    poller = threading.Thread(target=poll_server, args=(url + "api/flows", stop, worst))
    poller.start()
    t = time.perf_counter()
    page.locator(".wb-run-button button").click()
    status = page.locator(".wb-run-status").get_by_text(": ok in")
    try:
        status.wait_for(timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        stop.set()
        poller.join()
        return {"wall": float("inf"), "server": worst[0]}
    wall = time.perf_counter() - t
    # The canvas is coloured when the last node shows its mark (a ring or a tint).
    try:
        page.wait_for_function(MARKED, arg=f"n{nodes - 1}", polling=50, timeout=30_000)
        marked = time.perf_counter() - t
    except PlaywrightTimeout:  # an app whose marks do not show (a tint hidden by the node's colour)
        marked = float("inf")
    stop.set()
    poller.join()
    probe = page.evaluate(PROBE_STOP)
    shown = status.inner_text()  # "run ID: ok in 123.4 ms"
    return {
        "wall": wall,
        "marked": marked,
        "executor": float(shown.split(" in ")[1].split()[0]) / 1000,
        "stall": probe["stall"] / 1000,
        "frame_gap": probe["frameGap"] / 1000,
        "slow_frames": probe["slowFrames"],
        "frames": probe["frames"],
        "server": worst[0],
    }


def bare_run(root: Path, cwd: Path, nodes: int) -> float:
    """Seconds for the same run without the app: plan, run and store its trace, in a fresh process."""
    code = f"""
import asyncio, sys, time
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from bench_app import chain_flow
from workbench.flow import loads
from workbench.runtime import Executor
from workbench.traces import TraceWriter
writer = TraceWriter({str(cwd / f"bare-{time.time_ns()}.duckdb")!r})
flow = loads(chain_flow({nodes}, "out"))
t = time.perf_counter()
result = asyncio.run(Executor(flow, tracer=writer).arun({{"text": "mail me at a@b.example"}}))
writer.flush()
print(result.status, time.perf_counter() - t)
writer.close()
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "ok", out
    return float(out[1])


def print_editing(r: dict[str, float], peer_s: float, nodes: int, run_nodes: int, connects: int) -> None:
    """The editing figures of one app (``measure``)."""
    print(f"workbench app, first render:          {r['first']:.2f} s  ({r['first'] / peer_s:.1f}x the peer)")
    print(f"{nodes}-node flow, picked until drawn:   {r['big']:.2f} s  ({r['drawn']:.0f} canvas nodes)")
    print(f"{run_nodes}-node flow, picked until drawn: {r['huge']:.2f} s")
    print(f"drag a node 120 px (20 steps):        {r['drag'] * 1000:.0f} ms")
    print(f"connect two ports (whole gesture):     {r['connect'] * 1000:.0f} ms")
    print(f"  of which release until 'connected':  {r['answer'] * 1000:.0f} ms")
    print(f"  in the page, mouseup until shown:    {r['seen'] * 1000:.0f} ms")
    big = r["big_connect"] * 1000
    print(f"connect in the {nodes}-node flow (whole):   {big:.0f} ms (median of {connects})")
    print(f"  of which release until 'connected':  {r['big_answer'] * 1000:.0f} ms")
    print(f"  in the page, mouseup until shown:    {r['big_seen'] * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--connects", type=int, default=6, help="connects timed in the big flow")
    parser.add_argument("--no-run", action="store_true", help="leave the run-view benchmark out")
    parser.add_argument("--run-nodes", type=int, default=1000, help="nodes of the flow run in the run view")
    parser.add_argument("--run-timeout", type=float, default=300, help="seconds to wait for that run")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--run-only", action="store_true", help="measure the run view only")
    parser.add_argument(
        "--baseline-root",
        type=Path,
        help="another checkout (e.g. `git archive` of an older commit) measured the same way, first",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    apps = ([("baseline", args.baseline_root)] if args.baseline_root else []) + [("this tree", ROOT)]
    results: dict[str, dict[str, float]] = {}
    runs: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "chain.flow.yaml").write_text(chain_flow(args.nodes), encoding="utf-8")
        (cwd / "runchain.flow.yaml").write_text(chain_flow(args.run_nodes, "out"), encoding="utf-8")
        peer_port = free_port()
        peer_code = (
            "import panel as pn; pn.serve({'/': lambda: pn.pane.Markdown('peer page ready')}, "
            f"port={peer_port}, address='127.0.0.1', show=False)"
        )
        peer = subprocess.Popen(
            [sys.executable, "-c", peer_code],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs = [peer]
        try:
            wait_http(f"http://127.0.0.1:{peer_port}/", peer)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"http://127.0.0.1:{peer_port}/")
                page.get_by_text("peer page ready").wait_for(timeout=60_000)
                t = time.perf_counter()
                page.goto(f"http://127.0.0.1:{peer_port}/")
                page.get_by_text("peer page ready").wait_for()
                peer_s = time.perf_counter() - t
                for label, root in apps:
                    port = free_port()
                    # One database per app: DuckDB lets one process open a file.
                    app = start_app(root, cwd, port, str(cwd / f"t-{port}.duckdb"))
                    procs.append(app)
                    wait_http(f"http://127.0.0.1:{port}/api/flows", app)
                    url = f"http://127.0.0.1:{port}/"
                    if not args.run_only:
                        results[label] = measure(page, url, args.nodes, args.connects, args.run_nodes)
                    if not args.no_run:
                        runs[label] = measure_run(page, url, args.run_nodes, args.run_timeout)
                        runs[label]["bare"] = bare_run(root, cwd, args.run_nodes)
                    app.terminate()
                    app.wait(20)
                browser.close()
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"bare Panel page (peer), first render: {peer_s:.2f} s")
    for label in dict.fromkeys([*results, *runs]):
        print(f"-- {label}")
        if label in results:
            print_editing(results[label], peer_s, args.nodes, args.run_nodes, args.connects)
        if label not in runs:
            continue
        run = runs[label]
        if run["wall"] == float("inf"):
            print(
                f"{args.run_nodes}-node run: 'ok' did not show within {args.run_timeout:.0f} s "
                f"(the same run without the app: {run['bare']:.2f} s; slowest server answer meanwhile "
                f"{run['server']:.1f} s)"
            )
            continue
        print(
            f"{args.run_nodes}-node run, Run click until 'ok':  {run['wall']:.2f} s "
            f"({run['wall'] / run['bare']:.1f}x the same run without the app: {run['bare']:.2f} s; "
            f"the executor's own time in the app: {run['executor']:.2f} s); "
            + (
                f"until the canvas shows it: {run['marked']:.2f} s"
                if run["marked"] < float("inf")
                else "the canvas did not show the last node done within 30 s"
            )
        )
        print(
            f"  during it: longest page stall {run['stall'] * 1000:.0f} ms, longest frame gap "
            f"{run['frame_gap'] * 1000:.0f} ms ({run['slow_frames']:.0f} of {run['frames']:.0f} frames "
            f"over 100 ms), slowest server answer {run['server'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
