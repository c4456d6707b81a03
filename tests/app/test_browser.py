"""The app in a real browser (Playwright driving Chromium) against a live ``workbench serve``.

One page is driven through canvas and rail edits, a fresh one runs the triage flow and
reads its trace, a third opens a flow whose texts carry script. Screenshots are written
to the pytest temp folder (and copied to $WORKBENCH_SCREENSHOTS when that is set).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import launch_chromium
from .conftest import Served, save_shot

FIRST_RENDER_LIMIT_S = 10.0  # a sanity bound only; the benchmark measures the real figure


# Module scope, not session: while Playwright's sync API is open its event loop counts as
# running in this thread, and other tests' asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(15_000)
    ctx.requests = []  # every URL any page asked for
    ctx.on("request", lambda r: ctx.requests.append(r.url))
    yield ctx
    ctx.close()


def open_app(context: Any, server: Served, flow: str | None = None, node: str = "") -> tuple[Any, float]:
    """A new page with the app; returns it and the seconds until the canvas drew its nodes."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(server.url + "/")
    page.locator(".react-flow__node").first.wait_for(timeout=30_000)
    seconds = time.perf_counter() - start
    if flow is not None:
        page.locator(".wb-picker select").select_option(flow)
        page.locator(f'.react-flow__node[data-id="{node}"]').wait_for()  # the new flow is drawn
    return page, seconds


def fill_trader_form(page: Any, cash: str) -> None:
    """Open the Run tab of the trader flow on ``page`` and fill its form (BOLT news at 12.50)."""
    tab(page, "Run").click()
    page.locator(".wb-run-form textarea").fill(
        "BOLT shares jump after a record quarter; the stock trades at 12.50"
    )
    cash_box = page.locator(".wb-run-form input").first
    cash_box.fill(cash)
    cash_box.press("Tab")  # the spinner sends its value when it loses focus
    page.wait_for_timeout(300)


def text_of(page: Any, host: str) -> str:
    """The text a ``text_pane`` shows (inner_text does not enter Panel's shadow roots; CSS does)."""
    return page.locator(f"{host} .wb-text").first.inner_text()


def tab(page: Any, name: str) -> Any:
    """A tab header of Panel's Tabs (Bokeh draws them as .bk-tab elements)."""
    return page.locator(".bk-tab").filter(has_text=name).first


def handle(page: Any, node: str, port: str, side: str) -> Any:
    return page.locator(f'.react-flow__handle.{side}[data-nodeid="{node}"][data-handleid="{port}"]')


def drag(page: Any, source: Any, target: Any) -> None:
    """Drag from one handle to another with the mouse, as a person would."""
    a, b = source.bounding_box(), target.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


@pytest.fixture(scope="module")
def triage_page(context: Any, server: Served, shots: Path) -> Iterator[Any]:
    page, seconds = open_app(context, server)
    assert seconds < FIRST_RENDER_LIMIT_S, f"first render took {seconds:.1f} s"
    save_shot(page, shots, "01-first-render")
    page.locator(".wb-picker select").select_option("triage")
    page.locator('.react-flow__node[data-id="classify"]').wait_for()
    yield page
    page.close()


def test_rail_edit_shows_parse_errors_and_new_status(triage_page: Any, shots: Path) -> None:
    page = triage_page
    tab(page, "Rails").click()
    statuses = page.locator(".wb-rail-statuses")
    statuses.get_by_text("enforced  no_email").wait_for()
    page.locator(".wb-rail-choice select").select_option("no_email")
    editor = page.locator(".wb-rail-editor input")
    editor.fill("priority >= ")
    feedback = page.locator(".wb-rail-feedback")
    feedback.get_by_text("column").wait_for()
    assert "^" in text_of(page, ".wb-rail-feedback")
    save_shot(page, shots, "02-rail-parse-error")
    # Follows from enterprise_first upstream (the wire carries priority here): proved.
    editor.fill('implies(tier == "enterprise", priority >= 2)')
    editor.press("Enter")
    statuses.get_by_text("proved  no_email").wait_for()
    # The proved rail's port is marked on the canvas (a green ring on its handle).
    ring = handle(page, "summarise", "reply", "source").evaluate("e => getComputedStyle(e).boxShadow")
    assert "22, 163, 74" in ring
    save_shot(page, shots, "03-rail-proved")


def test_add_and_delete_rails_with_live_parse_errors(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    tab(page, "Rails").click()
    statuses = page.locator(".wb-rail-statuses")
    statuses.get_by_text("enforced  no_email").wait_for()
    page.locator(".wb-rail-new-name input").fill("at_least_one")
    page.locator(".wb-rail-new-port select").select_option("prioritise.priority")
    text = page.locator(".wb-rail-new-text input")
    text.fill("priority >= ")
    page.locator(".wb-rail-new-feedback").get_by_text("column").wait_for()
    assert "^" in text_of(page, ".wb-rail-new-feedback")
    save_shot(page, shots, "18-new-rail-parse-error")
    text.fill("priority >= 1")
    page.locator(".wb-rail-new-feedback").get_by_text("parses").wait_for()
    page.locator(".wb-rail-add button").click()
    # The background check answers with the new rail's status.
    statuses.get_by_text("enforced  at_least_one").wait_for()
    save_shot(page, shots, "19-rail-added")
    page.locator(".wb-rail-choice select").select_option("no_email")
    page.locator(".wb-rail-delete button").click()
    page.locator(".wb-rail-feedback").get_by_text("deleted rail no_email").wait_for()
    statuses.get_by_text("no_email").wait_for(state="detached")
    statuses.get_by_text("enforced  at_least_one").wait_for()
    # The deleted rail's port loses its ring on the canvas.
    reply = handle(page, "summarise", "reply", "source").element_handle()
    page.wait_for_function("e => getComputedStyle(e).boxShadow === 'none'", arg=reply)
    save_shot(page, shots, "20-rail-deleted")
    page.close()


def test_add_two_nodes_connect_and_refuse_a_mismatch(triage_page: Any, shots: Path) -> None:
    page = triage_page
    page.get_by_role("button", name="+ tool").click()
    page.locator('.react-flow__node[data-id="tool1"]').wait_for()
    page.get_by_role("button", name="+ llm").click()
    page.locator('.react-flow__node[data-id="llm1"]').wait_for()
    page.locator(".react-flow__controls-fitview").click()
    page.wait_for_timeout(400)
    drag(page, handle(page, "tool1", "result", "source"), handle(page, "llm1", "text", "target"))
    message = page.locator(".wb-canvas-message")
    message.get_by_text("connected tool1.result -> llm1.text").wait_for()
    page.locator('.react-flow__edge[data-id="tool1.result -> llm1.text"]').wait_for()
    save_shot(page, shots, "04-two-nodes-connected")

    edges = page.locator(".react-flow__edge").count()
    drag(page, handle(page, "redact", "text", "source"), handle(page, "prioritise", "urgency", "target"))
    message.get_by_text("refused").wait_for()
    text = text_of(page, ".wb-canvas-message")
    for part in ("redact.text", "(str)", "prioritise.urgency", "(int"):
        assert part in text, text
    page.wait_for_timeout(300)
    assert page.locator(".react-flow__edge").count() == edges  # the wire was taken back
    save_shot(page, shots, "05-incompatible-refused")

    page.get_by_role("button", name="Undo").click()
    message.get_by_text("undo: connect tool1.result -> llm1.text").wait_for()
    page.locator('.react-flow__edge[data-id="tool1.result -> llm1.text"]').wait_for(state="detached")


def test_run_triage_then_see_its_trace(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    tab(page, "Run").click()
    page.locator(".wb-run-form textarea").fill("Invoice charged twice, urgent! mail me at a@b.example")
    page.locator(".wb-run-form select").select_option("enterprise")
    page.locator(".wb-run-button button").click()
    status = page.locator(".wb-run-status")
    status.get_by_text(": ok in").wait_for(timeout=30_000)
    outputs = text_of(page, ".wb-run-outputs")
    assert '"category": "billing"' in outputs and '"priority": 2' in outputs
    assert "a@b.example" not in outputs  # redacted by the flow's first node
    rails = text_of(page, ".wb-run-rails")
    assert "pass  no_email" in rails and "pass  enterprise_first" in rails
    # Every node that ran is lit green on the canvas.
    glow = page.locator('.react-flow__node[data-id="summarise"]').evaluate(
        "e => getComputedStyle(e).boxShadow"
    )
    assert "22, 163, 74" in glow
    save_shot(page, shots, "06-run-done")
    run_id = text_of(page, ".wb-run-status").split()[1].rstrip(":")

    tab(page, "Traces").click()
    table = page.locator(".wb-runs")
    table.get_by_text(run_id).first.click()
    details = page.locator(".wb-span-details")
    details.get_by_text("invoke_flow triage").wait_for()
    assert run_id in text_of(page, ".wb-span-details")
    page.wait_for_timeout(500)
    save_shot(page, shots, "07-trace-timeline")

    # The latency of each node of the run's flow, as a Bokeh chart drawn from this server.
    # A run of tools only recorded no tokens: the Tokens tab says so, with no empty chart.
    tab(page, "Tokens").click()
    page.locator(".wb-token-info").get_by_text("no decode steps in this run").wait_for()
    page.wait_for_timeout(300)
    for part in ("chart", "table", "span"):
        assert not page.locator(f".wb-token-{part}").is_visible(), part
    save_shot(page, shots, "08-tokens-none")

    tab(page, "Latency").click()
    page.locator(".wb-latency canvas").first.wait_for()
    page.wait_for_timeout(500)
    save_shot(page, shots, "09-node-latency")

    tab(page, "SQL").click()
    editor = page.locator(".wb-sql-editor textarea")
    editor.fill(f"SELECT run_id, status FROM runs WHERE starts_with(run_id, '{run_id}')")
    page.locator(".wb-sql-run button").click()
    page.locator(".wb-sql-info").get_by_text("1 row").wait_for()
    page.locator(".wb-sql-result").get_by_text(run_id).wait_for()
    save_shot(page, shots, "10-sql-console")
    editor.fill("DELETE FROM runs")
    page.locator(".wb-sql-run button").click()
    page.locator(".wb-sql-info").get_by_text("DELETE statements are refused").wait_for()
    save_shot(page, shots, "11-sql-refused")
    page.close()


def test_sub_flow_opens_and_export_rebuilds_the_flow(context: Any, server: Served, shots: Path) -> None:
    from workbench.app.document import FlowDocument
    from workbench.app.export import flow_python
    from workbench.examples import flow_path
    from workbench.flow import Flow, dumps, load

    page, _ = open_app(context, server, "triage", "classify")
    page.get_by_role("button", name="+ flow").click()
    node = page.locator('.react-flow__node[data-id="flow1"]')
    node.wait_for()
    node.click()
    page.locator(".wb-open-subflow button").click()
    # The sub-flow's own canvas: its inputs wired straight to its outputs, and a way back.
    page.locator(".wb-crumb-1").get_by_text("flow1 (sub)").wait_for()
    page.locator('.react-flow__edge[data-id="value -> result"]').wait_for(state="attached")
    page.wait_for_timeout(500)
    assert page.locator('.react-flow__node[data-id="classify"]').count() == 0
    save_shot(page, shots, "12-sub-flow-open")
    page.locator(".wb-crumb-0 button").click()
    page.locator('.react-flow__node[data-id="classify"]').wait_for()
    assert page.locator(".wb-crumb-0").count() == 0

    page.get_by_role("button", name="Python").click()
    code_box = page.locator(".wb-export-code textarea")
    code_box.wait_for()
    code = code_box.input_value()
    save_shot(page, shots, "13-export-python")
    namespace: dict[str, Any] = {}
    exec(compile(code, "<exported>", "exec"), namespace)
    expected = FlowDocument(load(flow_path("triage")))
    expected.add_node("flow")
    assert isinstance(namespace["flow"], Flow)
    assert dumps(namespace["flow"]) == dumps(expected.flow)
    assert code == flow_python(expected.flow)
    page.close()


def test_group_selected_nodes_into_a_sub_flow_and_undo(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    page.locator('.react-flow__node[data-id="redact"]').click()
    page.locator('.react-flow__node[data-id="classify"]').click(modifiers=["Shift"])  # adds to the selection
    page.locator(".wb-group-button button").click()
    message = page.locator(".wb-canvas-message")
    message.get_by_text("grouped redact, classify as group1 (1 input, 3 outputs)").wait_for()
    page.locator('.react-flow__node[data-id="group1"]').wait_for()
    assert page.locator('.react-flow__node[data-id="redact"]').count() == 0
    # Its ports are the wires that crossed the boundary, wired as before.
    handle(page, "group1", "ticket", "target").wait_for()
    page.locator('.react-flow__edge[data-id="group1.classify_urgency -> prioritise.urgency"]').wait_for(
        state="attached"
    )
    page.wait_for_timeout(400)
    save_shot(page, shots, "16-grouped")
    page.locator('.react-flow__node[data-id="group1"]').click()
    page.locator(".wb-open-subflow button").click()
    page.locator('.react-flow__node[data-id="classify"]').wait_for()
    page.locator('.react-flow__edge[data-id="redact.text -> classify.text"]').wait_for(state="attached")
    page.wait_for_timeout(400)
    save_shot(page, shots, "17-group-opened")
    page.locator(".wb-crumb-0 button").click()
    page.locator('.react-flow__node[data-id="group1"]').wait_for()
    page.get_by_role("button", name="Undo").click()
    message.get_by_text("undo: group redact, classify as group1").wait_for()
    page.locator('.react-flow__node[data-id="redact"]').wait_for()
    assert page.locator('.react-flow__node[data-id="group1"]').count() == 0
    page.close()


def test_open_a_flow_by_path_and_refuse_one_outside(context: Any, server: Served, shots: Path) -> None:
    from workbench.examples import flow_path
    from workbench.flow import dumps, load

    # Written after the server started: not on its list, but under its directory.
    (server.cwd / "more").mkdir(exist_ok=True)
    (server.cwd / "more" / "second.flow.yaml").write_text(dumps(load(flow_path("trader"))), encoding="utf-8")
    page, _ = open_app(context, server)
    box = page.locator(".wb-open-path input")
    box.fill("../../etc/passwd.flow.yaml")
    box.press("Enter")
    status = page.locator(".wb-open-status")
    status.get_by_text("is outside the served directory").wait_for()
    save_shot(page, shots, "21-open-path-refused")
    box.fill("more/second.flow.yaml")
    box.press("Enter")
    page.locator('.react-flow__node[data-id="analyst"]').wait_for()
    status.get_by_text("second.flow.yaml").wait_for()
    assert page.locator(".wb-picker select").input_value() == "second"
    save_shot(page, shots, "22-open-path")
    page.close()


def test_breakpoint_pauses_then_step_and_continue(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    tab(page, "Run").click()
    page.locator(".wb-run-form textarea").fill("Invoice charged twice, urgent! mail a@b.example")
    page.locator(".wb-run-form select").select_option("enterprise")
    page.locator(".wb-breakpoints input").first.click()
    page.keyboard.type("classify")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.locator(".wb-run-button button").click()
    paused = page.locator(".wb-paused")
    paused.get_by_text("paused before classify").wait_for()
    assert "[email]" in text_of(page, ".wb-paused")  # its input: redact's output
    glow = page.locator('.react-flow__node[data-id="classify"]').evaluate(
        "e => getComputedStyle(e).boxShadow"
    )
    assert "124, 58, 237" in glow  # purple: paused here
    save_shot(page, shots, "15-breakpoint-paused")
    page.locator(".wb-step button").click()
    paused.get_by_text("paused before prioritise").wait_for()
    page.locator(".wb-continue button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=30_000)
    page.close()


def test_script_in_flow_text_never_runs(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "evil", "shout")
    page.locator(".wb-description").get_by_text("<script>window.__pwned=1</script>").wait_for()
    page.locator('.react-flow__node[data-id="shout"]').click()
    page.locator(".wb-node-info").get_by_text("shout · tool").wait_for()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    save_shot(page, shots, "08-script-shown-as-text")
    page.close()


def test_every_request_stays_on_the_local_server(context: Any, server: Served) -> None:
    """Runs last in this module: every page above (on this test worker) made its requests by now.

    Under xdist the pages may have run on another worker, so this test opens one itself and
    walks the tabs that load more (the traces view's plots, the run form).
    """
    page, _ = open_app(context, server, "triage", "redact")
    for name in ("Rails", "Run", "Traces", "Latency", "SQL"):
        tab(page, name).click()
        page.wait_for_timeout(300)
    page.close()
    assert context.requests, "no requests were recorded"
    host = server.url.removeprefix("http://")
    # blob: URLs are in-page memory of this origin (the ES module shim loads modules so).
    local = (f"http://{host}/", f"ws://{host}/", f"blob:http://{host}/")
    elsewhere = [u for u in context.requests if not u.startswith(local)]
    assert elsewhere == []
