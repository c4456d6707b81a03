"""Replay: a flow re-run with every model answer taken from a recorded run's trace.

Runs are recorded in a real DuckDB trace file through the scripted OpenAI-compatible
server on loopback; replays then run with that server shut down (or a fresh one for the
answers the recording lacks), so any model call they made would show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import workbench
from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.api import replay_answers
from workbench.cli import main
from workbench.errors import NodeError, UsageError
from workbench.examples import desk, flow_path
from workbench.flow import Flow, load, loads
from workbench.runtime import Approve, Executor
from workbench.runtime.memory import ThreadStore
from workbench.traces import TraceStore, tracer_for

NEWS = "BOLT shares jump after a record quarter"
FINAL = {"ticker": "BOLT", "qty": 80, "note": "bought 80 BOLT"}
SCRIPT = [
    calls(("quote", {"ticker": "BOLT"}), ids=["q1"]),
    calls(("buy", {"ticker": "BOLT", "qty": 100, "price": 12.5}), ids=["b1"]),  # 1250 > 1000: refused
    calls(("buy", {"ticker": "BOLT", "qty": 80, "price": 12.5}), ids=["b2"]),
    answer(FINAL),
]
DEAD_MODEL = {"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "gone", "timeout": 2}}


@pytest.fixture(autouse=True)
def _empty_ledger():
    desk.LEDGER.clear()
    yield
    desk.LEDGER.clear()


def _approve(node, tool, call_id, arguments):
    return Approve()


def _record(db: Path, flow: Flow, model, inputs, **options):
    with tracer_for(db) as tracer:
        return Executor(flow, tracer=tracer, model=model, approve=_approve, **options).run(inputs)


def _desk_variant(tmp_path: Path, *edits: tuple[str, str]) -> Flow:
    text = flow_path("desk").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "desk.flow.yaml"
    path.write_text(text)
    return load(path)


@pytest.fixture
def recorded(tmp_path):
    """A desk run recorded in ``tmp_path/traces.duckdb``: (db, run id, the server's requests)."""
    db = tmp_path / "traces.duckdb"
    with scripted(list(SCRIPT)) as server:
        result = _record(db, load(flow_path("desk")), server.model, {"news": NEWS, "cash": 1000.0})
    assert result.status == "ok", result.error
    desk.LEDGER.clear()
    return db, result.run_id, server.requests


def test_the_trace_keeps_every_answer_with_its_tool_calls(recorded):
    db, run_id, _ = recorded
    with TraceStore(db) as store:
        answers = store.model_answers(run_id[:8])  # a prefix is enough
    assert answers.run_id == run_id and answers.flow == "desk"
    assert answers.inputs == {"news": NEWS, "cash": 1000.0}
    (turns,) = answers.answers.values()
    assert list(answers.answers) == ["desk"]
    assert [t.tool_calls for t in turns[:3]] == [
        (("q1", "quote", '{"ticker": "BOLT"}'),),
        (("b1", "buy", '{"ticker": "BOLT", "qty": 100, "price": 12.5}'),),
        (("b2", "buy", '{"ticker": "BOLT", "qty": 80, "price": 12.5}'),),
    ]
    assert turns[3].text == json.dumps(FINAL) and turns[3].tool_calls == ()
    assert [t.finish_reason for t in turns] == ["tool_calls"] * 3 + ["stop"]
    assert all(t.request and len(t.request) == 16 for t in turns)


def test_a_replay_calls_no_model_reruns_the_tools_and_is_a_new_run_marked_as_a_replay(recorded):
    db, run_id, _ = recorded
    flow = load(flow_path("desk"))
    answers = replay_answers(flow, run_id, db=db)
    result = _record(db, flow, DEAD_MODEL, answers.inputs, replay=answers)
    assert result.status == "ok", result.error
    assert result.outputs == {"result": FINAL}
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 80, "price": 12.5}]  # tools run; the rail refused again
    assert [(r.name, r.verdict) for r in result.rails] == [("cap", "fail"), ("cap", "pass")]
    assert result.replay == {"of": run_id, "recorded": 4, "live": [], "diverged": []}

    with TraceStore(db) as store:
        assert len(store.runs()) == 2
        (root,) = store.query(
            "SELECT attributes->>'$.\"workbench.replay.of\"' AS of FROM spans "
            "WHERE parent_id IS NULL AND (attributes->>'$.\"workbench.run.id\"') = ?",
            [result.run_id],
        )["of"]
        chats = store.query(
            "SELECT attributes->>'$.\"workbench.replay.source\"' AS source FROM spans "
            "WHERE trace_id = (SELECT trace_id FROM runs WHERE run_id = ?) AND name LIKE 'chat %'",
            [result.run_id],
        )["source"]
        again = store.model_answers(result.run_id)  # a replay records its answers too
    assert root == run_id
    assert chats.tolist() == ["recorded"] * 4
    assert [t.tool_calls for t in again.answers["desk"]] == [
        t.tool_calls for t in replay_answers(flow, run_id, db=db).answers["desk"]
    ]


def test_a_changed_rail_is_tried_on_the_recorded_answers_and_the_diverged_steps_are_named(recorded, tmp_path):
    db, run_id, _ = recorded
    stricter = _desk_variant(tmp_path, ("buy.qty * buy.price <= cash", "buy.qty * buy.price <= cash / 2"))
    result = _record(
        db,
        stricter,
        DEAD_MODEL,
        {"news": NEWS, "cash": 1000.0},
        replay=replay_answers(stricter, run_id, db=db),
    )
    assert result.status == "ok", result.error
    assert desk.LEDGER == []  # 80 * 12.5 > 500: now both buys are refused
    assert [r.verdict for r in result.rails] == ["fail", "fail"]
    # the refusals quote the new rail: from the third turn on the conversation differs
    assert result.replay["diverged"] == [{"node": "desk", "step": 3}, {"node": "desk", "step": 4}]


def test_a_replay_that_needs_more_answers_fails_naming_the_node_and_step_or_asks_the_model_when_live(
    tmp_path,
):
    db = tmp_path / "traces.duckdb"
    inputs = {"news": NEWS, "cash": 1000.0}
    with scripted(SCRIPT[:3]) as server:  # a run cut short by max_steps: three answers recorded
        short = _record(db, _desk_variant(tmp_path, ("max_steps: 8", "max_steps: 3")), server.model, inputs)
    assert short.status == "failed" and "max_steps=3" in str(short.error)
    flow = load(flow_path("desk"))
    failed = _record(db, flow, DEAD_MODEL, inputs, replay=replay_answers(flow, short.run_id, db=db))
    assert failed.status == "failed"
    assert isinstance(failed.error, NodeError) and failed.error.node == "desk"
    message = str(failed.error)
    assert f"replay of run {short.run_id}: model answer 4 of node 'desk' was asked for" in message
    assert "recorded only 3" in message and "--replay-live" in message

    with scripted([answer(FINAL)]) as server:
        live = replay_answers(flow, short.run_id, db=db, live=True)
        result = _record(db, flow, server.model, inputs, replay=live)
    assert result.status == "ok", result.error
    assert result.outputs == {"result": FINAL}
    assert result.replay["recorded"] == 3 and result.replay["diverged"] == []
    assert result.replay["live"] == [
        {"node": "desk", "step": 4, "why": "the recording has no more answers for this node"}
    ]
    (request,) = server.requests  # only the missing answer was asked for, with the whole transcript
    assert [m["role"] for m in request["messages"]] == ["system", "user"] + ["assistant", "tool"] * 3


def test_live_replay_asks_the_model_once_the_conversation_differs(recorded, tmp_path):
    db, run_id, _ = recorded
    stricter = _desk_variant(tmp_path, ("buy.qty * buy.price <= cash", "buy.qty * buy.price <= cash / 2"))
    mine = {"ticker": "BOLT", "qty": 0, "note": "nothing bought"}
    with scripted([answer(mine)]) as server:
        answers = replay_answers(stricter, run_id, db=db, live=True)
        result = _record(db, stricter, server.model, {"news": NEWS, "cash": 1000.0}, replay=answers)
    assert result.status == "ok", result.error
    assert result.outputs == {"result": mine}
    # the third turn's request quotes the new rail in the refusal: the model takes over from there
    assert result.replay["recorded"] == 2 and result.replay["diverged"] == []
    assert result.replay["live"] == [
        {"node": "desk", "step": 3, "why": "the request differs from the recorded one"}
    ]
    assert len(server.requests) == 1


ASK = """
flow: ask
version: 1
inputs: {q: str}
outputs: {n: int}
nodes:
  ask: {kind: llm, model: default, prompt: "Pick a number for {{ q }}", inputs: {q: str}, outputs: {n: int}}
wires: [q -> ask.q, ask.n -> n]
rails:
  small: {on: ask.n, check: "n <= 5", enforce: repair}
"""


def test_llm_nodes_replay_every_answer_repairs_included_through_workbench_run(tmp_path):
    db = tmp_path / "traces.duckdb"
    with scripted([answer(50), answer(3)]) as server:
        first = workbench.run(loads(ASK), db=db, model=server.model, q="hi")
    assert first.status == "ok" and first.outputs == {"n": 3}, first.error
    result = workbench.run(loads(ASK), db=db, model=DEAD_MODEL, replay=first.run_id)  # inputs: the recorded
    assert result.status == "ok", result.error
    assert result.outputs == {"n": 3}
    assert [r.verdict for r in result.rails] == ["fail", "pass"]  # the repair round happened again
    assert result.replay == {"of": first.run_id, "recorded": 2, "live": [], "diverged": []}
    with pytest.raises(UsageError, match="cannot replay run 'nope'"):
        workbench.run(loads(ASK), db=db, replay="nope")
    with pytest.raises(UsageError, match="ran flow 'ask', not 'desk'"):
        replay_answers(load(flow_path("desk")), first.run_id, db=db)


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_workbench_run_replay_and_its_exit_codes(recorded, capsys, tmp_path):
    db, run_id, _ = recorded
    base = ["run", "desk", "--db", str(db), "--model", json.dumps(DEAD_MODEL), "--approve", "all"]
    code, out, err = _cli(capsys, *base, "--replay", "latest", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["outputs"] == {"result": FINAL}
    assert data["replay"] == {"of": run_id, "recorded": 4, "live": [], "diverged": []}
    code, out, err = _cli(capsys, *base, "--replay", run_id[:10], "-i", "cash=500")
    assert code == 0, err
    assert f"replay of run {run_id}: 4 model answers from its trace" in err
    # the prompt says the cash: every request differs, and the recorded answers are given all the same
    assert (
        "4 to a request unlike the recorded one (desk step 1, desk step 2, desk step 3, desk step 4)" in err
    )

    code, _, err = _cli(capsys, *base, "--replay", "0000nosuchrun")
    assert code == 2 and "cannot replay run '0000nosuchrun': no run '0000nosuchrun'" in err
    code, _, err = _cli(capsys, *base[:2], "--db", str(tmp_path / "none.duckdb"), "--replay", "latest")
    assert code == 2 and "no trace database at" in err
    code, _, err = _cli(capsys, "run", "triage", "--db", str(db), "--replay", run_id)
    assert code == 2 and "ran flow 'desk', not 'triage'" in err
    code, _, err = _cli(capsys, *base, "--replay-live")
    assert code == 2 and "--replay-live goes with --replay RUN_ID" in err


OFFICE = """
flow: office
version: 1
types:
  Ticker: {{str: {{pattern: '[A-Z]{{1,5}}'}}}}
  Result: {{ticker: Ticker, qty: {{int: {{ge: 0}}}}, note: str}}
inputs: {{news: str, cash: float}}
outputs: {{result: Result}}
nodes:
  desk: {{kind: flow, flow: '{desk}', inputs: {{news: str, cash: float}}, outputs: {{result: Result}}}}
wires: [news -> desk.news, cash -> desk.cash, desk.result -> result]
"""


def test_an_agent_inside_a_sub_flow_keeps_its_thread_and_replays_under_its_path(tmp_path):
    office = loads(OFFICE.format(desk=flow_path("desk")))
    db, state = tmp_path / "traces.duckdb", tmp_path / "state.duckdb"
    inputs = {"news": NEWS, "cash": 1000.0}
    with scripted([answer(FINAL), answer(FINAL)]) as server:
        first = _record(db, office, server.model, inputs, thread="t", state=state)
        second = _record(db, office, server.model, inputs, thread="t", state=state)
    assert first.status == second.status == "ok", (first.error, second.error)
    assert [m["role"] for m in server.requests[1]["messages"]] == ["system", "user", "assistant", "user"]
    answers = replay_answers(office, second.run_id, db=db)
    assert list(answers.answers) == ["desk/desk"]  # the sub-flow node's name, then the agent's
    assert ThreadStore(state).conversation("t", "desk/desk")[-1]["role"] == "assistant"
    replayed = _record(db, office, DEAD_MODEL, inputs, replay=answers)
    assert replayed.status == "ok", replayed.error
    assert replayed.outputs == {"result": FINAL}
    assert replayed.replay["recorded"] == 1
