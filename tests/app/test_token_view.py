"""The token view in Python: a real trader run on the tiny model with its budget rail enforced
while decoding, read back from a real trace file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import workbench
from workbench.app.token_view import (
    TokenStep,
    TokenView,
    decoded_spans,
    read_steps,
    summary,
    token_steps,
    token_strip,
    visible,
)
from workbench.app.traces_view import TracesView
from workbench.traces import TraceStore, TraceWriter

NEWS = "BOLT shares jump after a record quarter; the stock trades at 12.50"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    db = tmp_path_factory.mktemp("tokens") / "t.duckdb"
    result = workbench.run("trader", {"news": NEWS, "cash": 3.0}, db=db)
    assert result.status == "ok", result.error
    with TraceStore(db) as store:
        yield store, result.run_id


def test_steps_say_what_the_budget_rail_removed(recorded: tuple[Any, str]) -> None:
    store, run_id = recorded
    (call,) = decoded_spans(store, run_id).itertuples()
    steps = token_steps(store, call.span_id)
    completion = json.loads(
        store.query("SELECT attributes FROM spans WHERE span_id = ?", [call.span_id])["attributes"][0]
    )["gen_ai.completion"]
    assert "".join(steps["token"]) == completion and call.tokens == len(steps)
    narrowed = steps[steps["cut"] > 0]
    assert len(narrowed) == call.narrowed > 0 and set(narrowed["rails"]) == {"budget"}
    # the price's digits: with qty 1 and cash 3, every digit above 3 is cut
    first = narrowed.iloc[0]
    assert first["removed"] == ["4", "5", "6", "7", "8", "9"] and first["token"] not in first["removed"]
    assert (steps["share"] == steps["allowed"] / 1024).all()
    assert steps["p"].between(0, 1).all()


def test_the_view_shows_the_tokens_the_rail_narrowed(recorded: tuple[Any, str]) -> None:
    store, run_id = recorded
    view = TokenView(store, run_id=run_id)
    (span_id,) = view.picker.options.values()
    assert view.picker.value == span_id
    info = view.info.object
    assert "the rails narrowed" in info and "budget: " in info and "vocabulary 1,024" in info
    strip = view.strip.object
    assert strip.count('class="t') == len(view.steps)
    assert "narrowed by budget" in strip and "removed 4 5 6 7 8 9" in strip
    assert '<span class="ws">·</span>' in strip  # the space before a value shows
    table = view.table.value
    assert set(table.loc[table["rails"] == "budget", "removed"]) >= {"4 5 6 7 8 9"}
    # the view also takes a span id directly, and a callable giving the store
    alone = TokenView(lambda: store, span_id)
    assert alone.steps["token"].tolist() == view.steps["token"].tolist()
    # the table opens on the steps the rails narrowed; all steps one click away
    assert view.only_narrowed.value and (view.table.value["rails"] == "budget").all()
    view.only_narrowed.value = False
    assert len(view.table.value) == len(view.steps)


def test_the_traces_view_hosts_the_token_view(recorded: tuple[Any, str]) -> None:
    store, run_id = recorded
    traces = TracesView(lambda: store)
    traces.show_run(run_id)
    assert len(traces.tokens.steps) > 0
    (chat,) = [i for i, k in enumerate(traces.spans_df["span_kind"]) if k == "LLM"]
    traces.tokens.steps = traces.tokens.steps.iloc[:0]
    traces.show_span(chat)  # clicking the model call's bar shows its tokens
    assert len(traces.tokens.steps) > 0
    assert "the rails narrowed" in traces.tokens.info.object


def test_token_text_is_escaped_and_whitespace_drawn(tmp_path: Path) -> None:
    assert visible(" a\tb\n") == "·a→b↵" and visible("") == "∅"
    db = tmp_path / "t.duckdb"
    with TraceWriter(db) as w:
        span = w.start_span("chat tiny", attributes={"openinference.span.kind": "LLM"})
        for step, token in enumerate(["<script>alert(1)</script>", '" onmouseover="x', "\n"]):
            w.add_event(
                span,
                "workbench.decode.step",
                {"workbench.decode.step": step, "workbench.decode.token": token},
            )
        w.end_span(span)
    with TraceStore(db) as store:
        steps = token_steps(store, span.span_id)
        rows = read_steps(store, span.span_id)
    strip = token_strip(rows)
    assert "<script>alert" not in strip and "&lt;script&gt;alert(1)&lt;/script&gt;" in strip
    assert 'title="step 1 · &#x27;&quot; onmouseover=&quot;x' in strip  # a quote cannot end the attribute
    assert steps["share"].isna().all()  # no vocabulary size recorded: no share, no error


def test_a_run_without_decode_steps_shows_only_the_text(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    result = workbench.run("triage", {"ticket": "I was charged twice", "tier": "pro"}, db=db)
    with TraceStore(db) as store:
        view = TokenView(store, run_id=result.run_id)
        assert "no decode steps in this run" in view.info.object
        # no empty chart (its axis ran -1..1), table, pager, filter or model-call picker
        hidden = (view.picker, view.only_narrowed, view.key, view.chart, view.table)
        assert not any(part.visible for part in hidden)
        assert not TokenView(store).chart.visible


def test_the_summary_counts_in_the_singular_and_plural() -> None:
    step = TokenStep(
        0, "a", 7, None, allowed=3, schema_allowed=4, rails="budget", removed=["b"], p=0.5, cut=1, share=None
    )
    text = summary([step], None)
    assert "1 token;" in text and "the rails narrowed 1 step (budget: 1), removing 1 token;" in text
    assert "2 tokens" in summary([step, step], None) and "narrowed 2 steps" in summary([step, step], None)
