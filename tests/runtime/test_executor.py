"""The executor: dataflow order, concurrency, timeouts, retries, cancellation, node kinds."""

from __future__ import annotations

import asyncio
import time

import pytest

from workbench.errors import FlowValidationError, NodeError, NodeTimeout, TrustError, ValueValidationError
from workbench.flow import Flow, Node, loads
from workbench.runtime import Executor, aexecute, execute, returns
from workbench.runtime.nodes import parse_json_answer
from workbench.spans import MemoryTracer
from workbench.types import Int, Str


def inc(x: int) -> dict:
    return {"y": x + 1}


def double(x: int) -> dict:
    return {"y": 2 * x}


def boom(x: int) -> dict:
    raise ValueError(f"cannot handle {x}")


async def slow_echo(x: int) -> dict:
    await asyncio.sleep(0.2)
    return {"y": x}


def chain(*fns, name: str = "chain") -> Flow:
    flow = Flow(name, inputs={"x": int}, outputs={"y": int})
    prev = "x"
    for i, fn in enumerate(fns):
        flow.add(Node.tool(f"n{i}", fn, inputs={"x": int}, outputs={"y": int}))
        flow.connect(prev, f"n{i}.x")
        prev = f"n{i}.y"
    return flow.connect(prev, "y")


def test_chain_runs_in_order_and_traces_each_node():
    tracer = MemoryTracer()
    result = execute(chain(inc, double, inc), {"x": 3}, tracer=tracer)
    assert result.status == "ok" and result.outputs == {"y": 9}
    names = [s.attributes.get("workbench.node.name") for s in tracer.spans]
    assert names == ["n0", "n1", "n2", None]  # root span ends last
    root = tracer.spans[-1]
    assert root.attributes["workbench.run.id"] == result.run_id
    assert all(s.trace_id == root.trace_id for s in tracer.spans)
    assert all(s.parent_id == root.span_id for s in tracer.spans[:-1])


def test_independent_async_branches_overlap():
    flow = Flow("fan", inputs={"x": int}, outputs={"a": int, "b": int, "c": int})
    for name in "abc":
        flow.add(Node.tool(name, slow_echo, inputs={"x": int}, outputs={"y": int}))
        flow.connect("x", f"{name}.x").connect(f"{name}.y", name)
    start = time.perf_counter()
    result = execute(flow, {"x": 1})
    elapsed = time.perf_counter() - start
    assert result.outputs == {"a": 1, "b": 1, "c": 1}
    assert elapsed < 0.5, f"three 0.2 s branches took {elapsed:.2f} s: they did not overlap"


def test_failing_node_fails_the_run_naming_node_and_cause():
    result = execute(chain(inc, boom), {"x": 1})
    assert result.status == "failed"
    assert isinstance(result.error, NodeError)
    assert str(result.error) == "node 'n1' failed: ValueError: cannot handle 2"
    with pytest.raises(NodeError):
        result.raise_for_status()


def test_retries_are_bounded_and_recorded():
    calls = []

    def flaky(x: int) -> dict:
        calls.append(x)
        if len(calls) < 3:
            raise RuntimeError("transient")
        return {"y": x}

    flow = chain(flaky)
    flow.nodes["n0"].retries = 2
    tracer = MemoryTracer()
    assert execute(flow, {"x": 5}, tracer=tracer, retry_backoff=0.001).outputs == {"y": 5}
    assert len(calls) == 3
    assert [e.name for e in tracer.spans[0].events] == ["retry", "retry"]
    assert tracer.spans[0].events[0].attributes["error"] == "RuntimeError: transient"
    assert tracer.spans[0].attributes["workbench.node.attempts"] == 3
    calls.clear()
    flow.nodes["n0"].retries = 1
    result = execute(flow, {"x": 5}, retry_backoff=0.001)
    assert result.status == "failed" and "after 2 attempts" in str(result.error)


def test_timeout_per_node():
    flow = chain(slow_echo)
    flow.nodes["n0"].timeout = 0.05
    result = execute(flow, {"x": 1})
    assert isinstance(result.error, NodeTimeout)
    assert "timed out after 0.05 s" in str(result.error)


def test_a_failure_cancels_running_siblings():
    cancelled = []

    async def waits(x: int) -> dict:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return {"y": x}

    async def fails_soon(x: int) -> dict:
        await asyncio.sleep(0.01)
        raise RuntimeError("nope")

    flow = Flow("f", inputs={"x": int}, outputs={"a": int, "b": int})
    flow.add(Node.tool("a", waits, inputs={"x": int}, outputs={"y": int}))
    flow.add(Node.tool("b", fails_soon, inputs={"x": int}, outputs={"y": int}))
    flow.connect("x", "a.x").connect("x", "b.x").connect("a.y", "a").connect("b.y", "b")
    start = time.perf_counter()
    result = execute(flow, {"x": 1})
    assert result.status == "failed" and "node 'b' failed" in str(result.error)
    assert cancelled == [True]
    assert time.perf_counter() - start < 2


def test_cancelling_the_run_cancels_nodes_and_ends_spans():
    tracer = MemoryTracer()

    async def main():
        task = asyncio.ensure_future(aexecute(chain(slow_echo), {"x": 1}, tracer=tracer))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [s.status for s in tracer.spans] == ["ERROR", "ERROR"]
    assert tracer.spans[0].status_message == "cancelled"


def test_inputs_and_outputs_are_validated():
    with pytest.raises(ValueValidationError, match="x: 'a' is not an int"):
        execute(chain(inc), {"x": "a"})
    with pytest.raises(ValueValidationError, match="missing input"):
        execute(chain(inc), {})
    with pytest.raises(ValueValidationError, match="has no input of that name"):
        execute(chain(inc), {"x": 1, "z": 2})

    def bad(x: int) -> dict:
        return {"y": "not a number"}

    result = execute(chain(bad), {"x": 1})
    assert str(result.error) == "n0.y: 'not a number' is not an int"


def test_tool_must_return_a_dict_of_its_outputs():
    def plain(x: int) -> int:
        return x

    result = execute(chain(plain), {"x": 1})
    assert "returned int, expected a dict with keys ['y']" in str(result.error)
    assert "@workbench.returns('y')" in str(result.error)

    @returns("y")
    def adapted(x: int) -> int:
        return x * 10

    assert execute(chain(adapted), {"x": 2}).outputs == {"y": 20}


def test_narrower_port_types_are_checked_where_values_arrive():
    flow = Flow("f", inputs={"x": int}, outputs={"y": int})
    flow.add(Node.tool("n", inc, inputs={"x": Int(ge=0)}, outputs={"y": int}))
    flow.connect("x", "n.x").connect("n.y", "y")
    assert execute(flow, {"x": 0}).outputs == {"y": 1}
    result = execute(flow, {"x": -1})
    assert str(result.error) == "n.x: -1 is less than the minimum 0"


ROUTER_FLOW = """
flow: routing
inputs: {n: int}
outputs: {big: int, small: int}
nodes:
  route:
    kind: router
    routes: {large: "n > 100", tiny: "n <= 100"}
    inputs: {n: int}
    outputs: {large: int, tiny: int}
wires:
  - n -> route.n
  - route.large -> big
  - route.tiny -> small
"""


def test_router_takes_one_branch_and_skips_the_other():
    flow = loads(ROUTER_FLOW)
    big = execute(flow, {"n": 500})
    assert big.outputs == {"big": 500} and big.skipped_outputs == ["small"]
    small = execute(flow, {"n": 5})
    assert small.outputs == {"small": 5} and small.skipped_outputs == ["big"]


def test_router_without_match_or_default_fails():
    flow = loads(
        """
flow: r
inputs: {n: int}
outputs: {pos: int}
nodes:
  route: {kind: router, routes: {pos: "n > 0"}, inputs: {n: int}, outputs: {pos: int}}
wires: [n -> route.n, route.pos -> pos]
"""
    )
    error = execute(flow, {"n": -1}).error
    assert str(error) == "node 'route' failed: no route matched and there is no default"


def vote_flow(rule: str, values: int = 3, **config) -> Flow:
    extra = "".join(f", {k}: {v}" for k, v in config.items())
    ports = ", ".join(f"v{i}: str" for i in range(values))
    wires = "".join(f"\n  - v{i} -> vote.v{i}" for i in range(values))
    return loads(
        f"""
flow: voting
inputs: {{{ports}}}
outputs: {{winner: str}}
nodes:
  vote: {{kind: vote, rule: {rule}{extra}, inputs: {{{ports}}}, outputs: {{winner: str}}}}
wires:{wires}
  - vote.winner -> winner
"""
    )


def test_vote_majority_plurality_quorum_and_ties():
    assert execute(vote_flow("majority"), {"v0": "a", "v1": "b", "v2": "a"}).outputs == {"winner": "a"}
    no_majority = execute(vote_flow("majority"), {"v0": "a", "v1": "b", "v2": "c"})
    assert "no majority among 3 votes" in str(no_majority.error)
    tie = execute(vote_flow("plurality", 4), {"v0": "a", "v1": "b", "v2": "b", "v3": "a"})
    assert "tie between 2 values with 2 votes each" in str(tie.error)
    first = execute(vote_flow("plurality", 4, tie="first"), {"v0": "a", "v1": "b", "v2": "b", "v3": "a"})
    assert first.outputs == {"winner": "a"}
    quorum = vote_flow("quorum", 4, quorum=3)
    assert execute(quorum, {"v0": "x", "v1": "x", "v2": "y", "v3": "x"}).outputs == {"winner": "x"}
    assert execute(quorum, {"v0": "x", "v1": "x", "v2": "y", "v3": "y"}).status == "failed"
    skip = vote_flow("majority", no_winner="skip")
    assert execute(skip, {"v0": "a", "v1": "b", "v2": "c"}).skipped_outputs == ["winner"]


LOOP_FLOW = """
flow: looping
inputs: {start: int}
outputs: {final: int}
nodes:
  loop: {kind: loop, max_iterations: 10, until: "next >= 50", inputs: {init: int, next: int},
         outputs: {item: int, result: int}}
  step: {kind: tool, tool: tests.runtime.test_executor:double, inputs: {x: int}, outputs: {y: int}}
wires:
  - start -> loop.init
  - loop.item -> step.x
  - step.y -> loop.next
  - loop.result -> final
"""


def test_loop_runs_its_body_until_the_condition_or_the_bound():
    flow = loads(LOOP_FLOW)
    tracer = MemoryTracer()
    result = execute(flow, {"start": 3}, trust=True, tracer=tracer)
    assert result.outputs == {"final": 96}  # 3 -> 6 -> 12 -> 24 -> 48 -> 96
    assert len(tracer.by_name("execute_tool")) == 5
    loop_span = tracer.by_name("loop")[0]
    assert loop_span.attributes["workbench.loop.iterations"] == 5
    bounded = loads(LOOP_FLOW.replace("max_iterations: 10", "max_iterations: 2"))
    assert execute(bounded, {"start": 3}, trust=True).outputs == {"final": 12}


def test_cycle_without_loop_is_refused_before_running():
    flow = Flow("cyc", inputs={"x": int}, outputs={"y": int})
    flow.add(Node.tool("a", inc, inputs={"x": int}, outputs={"y": int}))
    flow.add(Node.tool("b", inc, inputs={"x": int}, outputs={"y": int}))
    flow.connect("b.y", "a.x").connect("a.y", "b.x").connect("a.y", "y")
    with pytest.raises(FlowValidationError, match="cycle a -> b -> a is not broken by a loop node"):
        Executor(flow)


def test_subflow_as_a_node_nests_its_spans():
    inner = chain(inc, inc, name="inner")
    outer = Flow("outer", inputs={"x": int}, outputs={"y": int})
    outer.add(inner.as_node("sub"), Node.tool("last", double, inputs={"x": int}, outputs={"y": int}))
    outer.connect("x", "sub.x").connect("sub.y", "last.x").connect("last.y", "y")
    tracer = MemoryTracer()
    assert execute(outer, {"x": 1}, tracer=tracer).outputs == {"y": 6}
    sub_span = next(s for s in tracer.spans if s.attributes.get("workbench.node.name") == "sub")
    inner_root = next(s for s in tracer.spans if s.name == "invoke_flow inner")
    assert inner_root.parent_id == sub_span.span_id


def test_untrusted_tool_outside_workbench_is_refused():
    flow = loads(LOOP_FLOW)
    with pytest.raises(TrustError, match="pass --trust on the command line or trust=True"):
        Executor(flow)


def test_llm_node_without_a_backend_is_a_clear_error(tmp_path):
    flow = Flow("ask", inputs={"q": str}, outputs={"a": str})
    flow.add(
        Node.llm(
            "bot",
            "Q: {{ q }}",
            inputs={"q": str},
            outputs={"a": Str()},
            model={"local": str(tmp_path / "missing")},
        )
    )
    flow.connect("q", "bot.q").connect("bot.a", "a")
    result = execute(flow, {"q": "hi"})
    assert result.status == "failed"
    assert "missing" in str(result.error)


def test_executor_is_reusable_and_runs_concurrently():
    executor = Executor(chain(slow_echo))

    async def main():
        return await asyncio.gather(*(executor.arun({"x": i}) for i in range(5)))

    start = time.perf_counter()
    results = asyncio.run(main())
    assert [r.outputs["y"] for r in results] == list(range(5))
    assert len({r.run_id for r in results}) == 5
    assert time.perf_counter() - start < 0.8


def test_an_answer_with_a_number_too_long_for_int_is_a_node_error():
    # json.loads raises a plain ValueError here, not a JSONDecodeError (no .msg, no .pos)
    with pytest.raises(NodeError, match=r"not valid JSON \(Exceeds the limit"):
        parse_json_answer("answer", "1" * 5000)
    with pytest.raises(NodeError, match=r"not valid JSON .* at char 1"):
        parse_json_answer("answer", "{x")
