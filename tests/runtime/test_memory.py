"""Thread memory: agent conversations kept per thread in a real DuckDB state file.

The model is the scripted OpenAI-compatible server on loopback; each test checks what the
next run's agent sent it (the earlier turns, one system prompt, the new user turn).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.cli import main
from workbench.errors import UsageError
from workbench.examples import desk, flow_path
from workbench.flow import load
from workbench.runtime import Approve, Executor
from workbench.runtime.memory import ThreadError, ThreadStore, ThreadWarning, default_state_path

NEWS = "BOLT shares jump after a record quarter"
FINAL = {"ticker": "BOLT", "qty": 8, "note": "bought 8 BOLT"}
LATER = {"ticker": "BOLT", "qty": 0, "note": "already bought BOLT earlier"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _empty_ledger():
    desk.LEDGER.clear()
    yield
    desk.LEDGER.clear()


def _approve(node, tool, call_id, arguments):
    return Approve()


def _run(flow, server, state, thread="t1", news=NEWS, **options):
    executor = Executor(flow, model=server.model, approve=_approve, thread=thread, state=state, **options)
    return executor.run({"news": news, "cash": 1000.0})


def _desk_variant(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of the desk flow file with each ``(old, new)`` text replaced."""
    text = flow_path("desk").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{name}.flow.yaml"
    path.write_text(text)
    return path


def test_the_next_run_of_a_thread_continues_each_agents_conversation(tmp_path):
    state = tmp_path / "state.duckdb"
    first = [calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"]), answer(FINAL)]
    with scripted([*first, answer(LATER)]) as server:
        one = _run(load(flow_path("desk")), server, state)
        two = _run(load(flow_path("desk")), server, state, news="BOLT slips 2%")
    assert one.status == "ok" and two.status == "ok", (one.error, two.error)
    assert one.thread == two.thread == "t1" and two.outputs == {"result": LATER}

    run_one = server.requests[1]["messages"]  # the first run's last request: its whole conversation
    sent = server.requests[2]["messages"]
    assert [m["role"] for m in run_one] == ["system", "user", "assistant", "tool"]
    # the earlier turns come back after one system prompt, then the first answer, then the new prompt
    assert sent[: len(run_one)] == run_one
    assert sent[len(run_one)] == {"role": "assistant", "content": json.dumps(FINAL)}
    assert sent[-1]["role"] == "user" and "News: BOLT slips 2%" in sent[-1]["content"]
    assert [m["role"] for m in sent].count("system") == 1
    assert len(sent) == len(run_one) + 2
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 8, "price": 12.5}]  # the old call did not run again

    # the state file is a plain DuckDB file holding the conversation without its system prompt
    stored = ThreadStore(state).conversation("t1", "desk")
    assert stored == [*sent[1:], {"role": "assistant", "content": json.dumps(LATER)}]
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("SELECT thread_id, flow_name, runs, holder FROM threads").fetchall() == [
            ("t1", "desk", 2, None)
        ]


def test_another_thread_and_a_run_without_one_start_afresh(tmp_path):
    state = tmp_path / "state.duckdb"
    with scripted([answer(FINAL), answer(FINAL), answer(FINAL)]) as server:
        _run(load(flow_path("desk")), server, state, thread="a")
        _run(load(flow_path("desk")), server, state, thread="b")
        _run(load(flow_path("desk")), server, state, thread=None)
    assert [len(r["messages"]) for r in server.requests] == [2, 2, 2]


def test_the_flows_current_system_prompt_replaces_the_stored_one(tmp_path):
    state = tmp_path / "state.duckdb"
    changed = _desk_variant(
        tmp_path, "desk", ("    kind: agent\n", "    kind: agent\n    system: You are a careful desk.\n")
    )
    with scripted([answer(FINAL), answer(LATER)]) as server:
        _run(load(flow_path("desk")), server, state)
        result = _run(load(changed), server, state)
    assert result.status == "ok", result.error
    sent = server.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"].startswith("You are a careful desk.")


def test_a_failed_run_leaves_the_thread_as_it_was(tmp_path):
    state = tmp_path / "state.duckdb"
    script = [answer(FINAL), answer("not JSON"), answer("still not JSON"), answer(LATER)]
    flow = load(flow_path("desk"))
    flow.nodes["desk"].config["max_steps"] = 2
    with scripted(script) as server:
        assert _run(flow, server, state).status == "ok"
        failed = _run(flow, server, state, news="second")
        third = _run(flow, server, state, news="third")
    assert failed.status == "failed" and "max_steps=2" in str(failed.error)
    assert third.status == "ok", third.error
    sent = server.requests[3]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]  # nothing of the failed run
    assert "News: third" in sent[-1]["content"]
    assert ThreadStore(state).threads()[0]["holder"] is None  # released after the failure too


def test_a_renamed_agent_node_starts_afresh_with_a_warning_and_its_old_conversation_is_kept(tmp_path):
    state = tmp_path / "state.duckdb"
    renamed = load(_desk_variant(tmp_path, "renamed", ("  desk:\n", "  trader:\n"), ("desk.", "trader.")))
    with scripted([answer(FINAL), answer(FINAL), answer(LATER)]) as server:
        _run(load(flow_path("desk")), server, state)
        with pytest.warns(ThreadWarning, match=r"agent nodes that flow 'desk' does not have \(desk\)"):
            moved = _run(renamed, server, state)
        with pytest.warns(ThreadWarning, match=r"\(trader\)"):  # the old name finds its conversation again
            back = _run(load(flow_path("desk")), server, state)
    assert moved.status == "ok" and back.status == "ok"
    assert len(server.requests[1]["messages"]) == 2
    assert [m["role"] for m in server.requests[2]["messages"]] == ["system", "user", "assistant", "user"]
    assert ThreadStore(state).conversation("t1", "trader")[0]["role"] == "user"


def test_a_thread_belongs_to_its_flow_and_bad_ids_are_refused(tmp_path):
    state = tmp_path / "state.duckdb"
    other = load(_desk_variant(tmp_path, "other", ("flow: desk\n", "flow: other_desk\n")))
    with scripted([answer(FINAL)]) as server:
        _run(load(flow_path("desk")), server, state)
        with pytest.raises(
            UsageError, match="thread 't1' holds the conversation of flow 'desk', not 'other_desk'"
        ):
            _run(other, server, state)
    for bad in ("", "has space", "-dash", "x" * 201, 7):
        with pytest.raises(UsageError, match="is not valid"):
            Executor(load(flow_path("desk")), thread=bad)


def test_two_runs_of_one_thread_at_once_one_is_refused_and_the_state_stays_whole(tmp_path):
    state = tmp_path / "state.duckdb"
    executor_options = {"approve": _approve, "state": state}

    async def both(server):
        executor = Executor(load(flow_path("desk")), model=server.model, **executor_options)
        inputs = {"news": NEWS, "cash": 1000.0}
        return await asyncio.gather(
            executor.arun(inputs, thread="t1"), executor.arun(inputs, thread="t1"), return_exceptions=True
        )

    with scripted([answer(FINAL), answer(LATER)]) as server:
        results = asyncio.run(both(server))
    (refused,) = [r for r in results if isinstance(r, ThreadError)]
    (first,) = [r for r in results if not isinstance(r, ThreadError)]
    assert first.status == "ok", first.error
    assert f"thread 't1' is in use by run {first.run_id}" in str(refused)
    assert len(server.requests) == 1
    assert len(ThreadStore(state).conversation("t1", "desk")) == 2


HOLDER = textwrap.dedent(
    """
    import sys
    from workbench.runtime.memory import ThreadStore
    ThreadStore(sys.argv[1]).claim("t1", "desk", "run-of-another-process")
    print("held", flush=True)
    sys.stdin.readline()  # ends without releasing: as if it had crashed
    """
)


def test_a_thread_held_by_another_process_is_refused_until_that_process_is_gone(tmp_path):
    state = tmp_path / "state.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with scripted([answer(FINAL)]) as server:
            with pytest.raises(
                ThreadError, match=rf"in use by run run-of-another-process \(process {holder.pid}\)"
            ):
                _run(load(flow_path("desk")), server, state)
            holder.communicate("go\n", timeout=60)  # the holder dies with its claim still recorded
            result = _run(load(flow_path("desk")), server, state)  # a dead process's claim is taken over
    finally:
        holder.kill()
        holder.wait()
    assert result.status == "ok", result.error
    assert ThreadStore(state).threads()[0]["holder"] is None


OPENER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def test_a_state_file_another_process_has_open_is_waited_for_then_refused_clearly(tmp_path):
    state = tmp_path / "state.duckdb"
    opener = subprocess.Popen(
        [sys.executable, "-c", OPENER, str(state), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert opener.stdout.readline().strip() == "open"
        with pytest.raises(ThreadError, match=r"another process held it over 0\.2 s"):
            ThreadStore(state, wait=0.2).claim("t1", "desk", "r1")
        memory = ThreadStore(state, wait=30).claim("t1", "desk", "r2")  # waits for the other process
    finally:
        opener.wait(timeout=60)
    assert memory.run_id == "r2" and memory.stored == {}


def test_the_default_state_file_lies_beside_the_trace_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_state_path() == tmp_path / ".workbench" / "state.duckdb"
    assert default_state_path(tmp_path / "traces" / "t.duckdb") == tmp_path / "traces" / "state.duckdb"


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_workbench_run_thread_continues_the_conversation_and_says_where_it_is_kept(tmp_path, capsys):
    db = tmp_path / "traces.duckdb"
    with scripted([answer(FINAL), answer(LATER)]) as server:
        common = ["run", "desk", "-i", "cash=1000", "--model", json.dumps(server.model), "--db", str(db)]
        code, out, err = _cli(
            capsys, *common, "-i", f"news={NEWS}", "--thread", "user-42", "--approve", "all"
        )
        assert code == 0, err
        assert f"thread user-42: conversation kept (state: {tmp_path / 'state.duckdb'})" in err
        code, out, err = _cli(capsys, *common, "-i", "news=later", "--thread", "user-42", "--json")
    assert code == 0, err
    assert json.loads(out)["thread"] == "user-42"
    assert [m["role"] for m in server.requests[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert (tmp_path / "state.duckdb").exists()


def test_workbench_run_thread_exit_codes(tmp_path, capsys):
    state = tmp_path / "s.duckdb"
    base = ["run", "desk", "-i", f"news={NEWS}", "-i", "cash=1000", "--no-trace", "--state", str(state)]
    code, _, err = _cli(capsys, *base, "--thread", "not valid!")
    assert code == 2 and "thread id 'not valid!' is not valid" in err
    ThreadStore(state).claim("busy", "desk", "other-run")  # held by this (live) process
    code, _, err = _cli(capsys, *base, "--thread", "busy")
    assert code == 1 and "thread 'busy' is in use by run other-run" in err
    ThreadStore(state).claim("theirs", "triage", "r")
    code, _, err = _cli(capsys, *base, "--thread", "theirs")
    assert code == 2 and "holds the conversation of flow 'triage'" in err
