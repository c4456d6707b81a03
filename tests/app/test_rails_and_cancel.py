"""The rails panel's layout texts and Explain, a cancelled run read as cancelled, the header.

In-process: the views' handlers are called as a click would, against the real Z3 check,
the real agent runtime (a scripted OpenAI-compatible server on loopback) and a real trace
file. The same things in a browser: test_rails_cancel_browser.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.app.agent_flows import NEWS, desk_text
from tests.runtime.scripted_openai import calls, scripted
from workbench.app.document import FlowDocument
from workbench.app.rails_panel import RailsPanel, status_lines
from workbench.app.run_view import RunView
from workbench.app.workbench_app import Workbench
from workbench.examples import desk, flow_path
from workbench.flow import loads
from workbench.traces import TraceWriter

from .conftest import ROOT


def test_a_counterexample_shows_one_value_a_line_records_opened_up() -> None:
    rail = {
        "name": "no_email",
        "port": "summarise.reply",
        "status": "enforced",
        "counterexample": {"summarise.reply": {"category": "bug", "priority": 0}, "tier": "enterprise"},
    }
    assert status_lines(rail).splitlines() == [
        "enforced  no_email on summarise.reply",
        "  counterexample:",
        '    summarise.reply.category = "bug"',
        "    summarise.reply.priority = 0",
        '    tier = "enterprise"',
    ]


def test_statuses_wrap_each_line_under_its_own_indent() -> None:
    panel = RailsPanel(FlowDocument.open(flow_path("triage")))
    shown = panel.statuses.object
    # One block per line, indented by its depth; a wrapped line hangs two columns further.
    assert (
        '<div style="padding-left:6ch;text-indent:-2ch">summarise.reply.summary = &quot;@&quot;</div>'
        in shown
    )


def test_explain_shows_what_the_cli_prints_for_the_chosen_rail() -> None:
    panel = RailsPanel(FlowDocument.open(flow_path("triage")))
    panel.choice.value = "no_email"
    text = panel.explain()
    cli = subprocess.run(
        [sys.executable, "-m", "workbench", "check", "triage", "--explain", "no_email"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert text.startswith("rail 'no_email': not matches(reply.summary") and "SMT-LIB:" in text
    assert text in cli.stdout
    assert "verdict: enforced" in panel.explained.object and "SMT-LIB:" in panel.explained.object
    panel.choice.value = "enterprise_first"  # another rail: the old explanation goes
    assert panel.explained.object == ""


def test_explain_says_why_it_cannot() -> None:
    panel = RailsPanel(FlowDocument.open(flow_path("triage")))
    assert panel.explain("nope").startswith("cannot explain rail nope: flow 'triage' has no rail 'nope'")


@pytest.fixture()
def _empty_ledger() -> Any:
    desk.LEDGER.clear()
    yield
    desk.LEDGER.clear()


@pytest.mark.usefixtures("_empty_ledger")
def test_a_cancelled_run_reads_cancelled_in_the_view_the_marks_and_the_store(tmp_path: Path) -> None:
    marks: dict[str, str | None] = {}
    writer = TraceWriter(tmp_path / "t.duckdb")
    with scripted([calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"])]) as server:
        view = RunView(
            FlowDocument(loads(desk_text(server.url))),
            tracer=lambda: (writer, False),
            on_nodes=marks.update,
        )
        view.widgets["news"].value = NEWS
        view.widgets["cash"].value = 1000.0

        async def main() -> None:
            run = asyncio.ensure_future(view._run())
            for _ in range(1000):
                if view.approvals.cards:
                    break
                await asyncio.sleep(0.01)
            assert view.approvals.cards, "no approval card"
            view.cancel_button.clicks += 1
            await asyncio.wait_for(run, 10)

        asyncio.run(main())
    # The agent was running (waiting for approval) when cancelled: grey, not a failure.
    assert marks == {"desk": "cancelled"}
    assert "nodes: 1 cancelled (of 1)" in view.progress.object
    assert "cancelled" in view.status.object and "wb-error" not in view.status.object
    writer.flush()
    runs = writer.store().runs()
    assert list(runs["status"]) == ["cancelled"]
    roots = writer.store().query("SELECT status FROM spans WHERE parent_id IS NULL")
    assert list(roots["status"]) == ["ERROR"]  # the span keeps OTLP's words (it has no "cancelled")
    writer.close()


def test_header_names_the_example_and_where_save_writes(tmp_path: Path) -> None:
    app = Workbench({"desk": flow_path("desk")}, save_to={"desk": tmp_path / "desk.flow.yaml"}, root=tmp_path)
    assert "example desk (read-only) \u2014 Save writes ./desk.flow.yaml" in app.status.object
    assert str(tmp_path) not in app.status.object  # the file that does not exist is not named as the source
    mine = tmp_path / "mine.flow.yaml"
    mine.write_text(flow_path("triage").read_text(encoding="utf-8"), encoding="utf-8")
    app = Workbench({"mine": mine}, root=tmp_path)
    assert str(mine) in app.status.object
