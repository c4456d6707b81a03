"""Rails at runtime: block, observe, decode-as-block, guarantees, packs, input rails,
traced checks, and the repair path of an llm node (docs/architecture.md, "Rail language")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from workbench.errors import RailViolation
from workbench.examples import flow_path
from workbench.flow import loads
from workbench.models.base import Generation, GenerationRequest, Model, TokenEvent
from workbench.runtime import Executor, execute
from workbench.spans import MemoryTracer

from .test_executor import ROUTER_FLOW

HERE = "tests.runtime.test_rails_runtime"
TRADER = flow_path("trader").read_text()


class ScriptedModel:
    """A test backend for the executor's control flow, not a model: ``generate`` returns
    the scripted answers in order (one per call) and records the messages it was sent.
    It lets the repair path run deterministically without weights."""

    name = "scripted"

    def __init__(self, *answers: object) -> None:
        self.answers = [a if isinstance(a, str) else json.dumps(a) for a in answers]
        self.calls: list[list[dict[str, str]]] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            self.calls.append(list(request.messages or []))
            if not self.answers:
                raise AssertionError("the scripted model ran out of answers")
            out.append(Generation(self.answers.pop(0), "stop", input_tokens=3, output_tokens=5))
        return out

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        (generation,) = await self.generate([request])
        yield TokenEvent(0, generation.text, finish_reason="stop")


def order(ticker: str = "IBM", qty: int = 2, price: float = 10.0, side: str = "buy") -> dict:
    return {"side": side, "ticker": ticker, "qty": qty, "price": price}


# -- tools -----------------------------------------------------------------------------------


def echo_int(x: int) -> dict:
    return {"y": x}


def echo_str(s: str) -> dict:
    return {"out": s}


def off_by_one(x: int) -> dict:
    return {"y": x - 1}


def tool_flow(rails: str, *, tool: str = "echo_int", guarantees: str = "", inputs: str = "{x: int}") -> str:
    extra = f", guarantees: {guarantees}" if guarantees else ""
    return f"""flow: f
version: 1
inputs: {inputs}
outputs: {{out: int}}
nodes:
  t: {{kind: tool, tool: {HERE}:{tool}, inputs: {{x: int}}, outputs: {{y: int}}{extra}}}
wires: [x -> t.x, t.y -> out]
rails:
{rails}"""


STR_FLOW = f"""flow: s
version: 1
use: [pii]
inputs: {{s: str}}
outputs: {{out: str}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_str, inputs: {{s: str}}, outputs: {{out: str}}}}
wires: [s -> t.s, t.out -> out]
"""


def test_scripted_model_satisfies_the_model_protocol():
    assert isinstance(ScriptedModel(), Model)


# -- block -------------------------------------------------------------------------------------


def test_trader_runs_when_every_rail_holds_and_each_check_is_a_span_event():
    model, tracer = ScriptedModel(order()), MemoryTracer()
    result = execute(loads(TRADER), {"news": "IBM up", "cash": 100.0}, model=model, tracer=tracer)
    assert result.status == "ok", result.error
    assert result.outputs == {"approved": order()}
    verdicts = {(r.name, r.port): r.verdict for r in result.rails}
    assert verdicts == {
        ("budget", "analyst.order"): "pass",
        ("restricted", "analyst.order"): "pass",
        ("cap", "risk.approved"): "pass",
        ("risk.guarantees[0]", "risk.approved"): "pass",
        ("risk.guarantees[1]", "risk.approved"): "pass",
    }
    (chat,) = tracer.by_name("chat")
    assert chat.name == "chat scripted"
    events = [e for e in chat.events if e.name == "rail.check"]
    assert [e.attributes["workbench.rail.name"] for e in events] == ["budget", "restricted"]
    for event in events:
        attrs = event.attributes
        assert attrs["workbench.rail.port"] == "analyst.order"
        assert attrs["workbench.rail.verdict"] == "pass"
        assert attrs["openinference.span.kind"] == "GUARDRAIL"
        assert 0 <= attrs["workbench.rail.us"] < 1e6
    assert events[0].attributes["workbench.rail.enforce"] == "decode"
    (tool_span,) = tracer.by_name("execute_tool")
    names = [e.attributes["workbench.rail.name"] for e in tool_span.events if e.name == "rail.check"]
    assert names == ["cap", "risk.guarantees[0]", "risk.guarantees[1]"]


def test_block_names_rail_port_values_and_failed_atoms():
    model, tracer = ScriptedModel(order(ticker="ACME")), MemoryTracer()
    result = execute(loads(TRADER), {"news": "n", "cash": 100.0}, model=model, tracer=tracer)
    assert result.status == "failed" and isinstance(result.error, RailViolation)
    message = str(result.error)
    assert "rail 'restricted' blocked analyst.order" in message
    assert "(failed: order.ticker not in RESTRICTED)" in message
    assert "'ticker': 'ACME'" in message
    assert len(model.calls) == 1  # block does not re-ask
    (record,) = [r for r in result.rails if r.verdict == "fail"]
    assert (record.name, record.enforce, record.failed_atoms) == (
        "restricted",
        "block",
        ("order.ticker not in RESTRICTED",),
    )
    (chat,) = tracer.by_name("chat")
    assert chat.status == "ERROR"
    failed = [e for e in chat.events if e.attributes.get("workbench.rail.verdict") == "fail"]
    assert [e.attributes["workbench.rail.name"] for e in failed] == ["restricted"]
    assert result.outputs == {}


def test_only_the_failed_atoms_are_reported():
    flow = loads(tool_flow('  both: {on: t.x, check: "x >= 0 and x <= 10 and x != 7"}\n'))
    result = execute(flow, {"x": 12}, trust=True)
    assert result.status == "failed"
    assert "(failed: x <= 10) with x=12" in str(result.error)
    (record,) = result.rails
    assert record.failed_atoms == ("x <= 10",) and record.values == {"x": 12}


def test_decode_on_a_backend_without_masks_generates_again():
    tracer = MemoryTracer()
    model = ScriptedModel(order(qty=20, price=10.0), order())
    result = execute(loads(TRADER), {"news": "n", "cash": 100.0}, model=model, tracer=tracer)
    assert result.status == "ok" and result.outputs["approved"] == order()
    assert len(model.calls) == 2  # the broken answer was checked and generated again
    (chat,) = tracer.by_name("chat")
    assert json.loads(chat.attributes["workbench.decode.rails"]) == {"budget": "reject"}
    assert "checked after generation" in chat.attributes["workbench.decode.backend"]
    (resample,) = [e for e in chat.events if e.name == "workbench.decode.resample"]
    assert resample.attributes["workbench.decode.broken"] == "budget"


def test_decode_blocks_once_the_attempts_are_spent():
    broken = order(qty=20, price=10.0)
    model = ScriptedModel(broken, broken, broken, order())
    result = execute(loads(TRADER), {"news": "n", "cash": 100.0}, model=model)
    assert result.status == "failed"
    assert "rail 'budget' blocked analyst.order" in str(result.error)
    assert "order.qty * order.price <= cash" in str(result.error) and "cash=100.0" in str(result.error)
    assert len(model.calls) == 3  # DEFAULT_ATTEMPTS generations, then the runtime check blocks


def test_rails_off_lets_everything_through():
    model = ScriptedModel(order(ticker="ACME"))
    result = execute(loads(TRADER), {"news": "n", "cash": 100.0}, model=model, rails=False)
    assert result.status == "ok" and result.rails == []


# -- observe, guarantees, packs, inputs ---------------------------------------------------------


def test_observe_records_a_failure_and_the_run_continues():
    tracer = MemoryTracer()
    flow = loads(tool_flow('  small: {on: t.x, check: "x < 10", enforce: observe}\n'))
    result = execute(flow, {"x": 12}, trust=True, tracer=tracer)
    assert result.status == "ok" and result.outputs == {"out": 12}
    (record,) = result.rails
    assert (record.name, record.verdict, record.enforce) == ("small", "fail", "observe")
    assert record.to_json()["failed_atoms"] == ["x < 10"]
    (span,) = tracer.by_name("execute_tool")
    (event,) = span.events
    assert event.name == "rail.check" and event.attributes["workbench.rail.verdict"] == "fail"
    assert span.status != "ERROR"


def test_guarantees_are_checked_at_runtime():
    flow = loads(tool_flow('  any: {on: t.x, check: "x >= 0"}\n', tool="off_by_one", guarantees='["y >= x"]'))
    result = execute(flow, {"x": 3}, trust=True)
    assert result.status == "failed"
    assert "rail 't.guarantees[0]' blocked t.y" in str(result.error)
    assert "x=3" in str(result.error) and "y=2" in str(result.error)
    kept = loads(tool_flow('  any: {on: t.x, check: "x >= 0"}\n', guarantees='["y >= x"]'))
    assert execute(kept, {"x": 3}, trust=True).status == "ok"


def test_pii_pack_blocks_an_email_in_a_flow_output():
    tracer = MemoryTracer()
    flow = loads(STR_FLOW)
    result = execute(flow, {"s": "write to bob.smith@example.com today"}, trust=True, tracer=tracer)
    assert result.status == "failed"
    assert "rail 'pii.no_email[out]' blocked out" in str(result.error)
    assert "bob.smith@example.com" in str(result.error)
    root = tracer.spans[-1]
    assert root.status == "ERROR"
    names = {e.attributes["workbench.rail.name"] for e in root.events if e.name == "rail.check"}
    assert names == {"pii.no_email[out]", "pii.no_phone[out]", "pii.no_card[out]", "pii.no_iban[out]"}
    clean = execute(flow, {"s": "nothing personal here"}, trust=True)
    assert clean.status == "ok" and [r.verdict for r in clean.rails] == ["pass"] * 4
    card = execute(flow, {"s": "card 4111 1111 1111 1111"}, trust=True)
    assert card.status == "failed"  # a card number also looks like a phone number: both fail
    assert {r.name: r.verdict for r in card.rails}["pii.no_card[out]"] == "fail"
    assert {r.name: r.verdict for r in clean.rails}["pii.no_card[out]"] == "pass"


def test_rails_on_flow_inputs_block_before_any_node_and_are_traced():
    tracer = MemoryTracer()
    flow = loads(tool_flow('  nonneg: {on: x, check: "x >= 0"}\n'))
    blocked = Executor(flow, trust=True, tracer=tracer).run({"x": -1})
    assert blocked.status == "failed" and isinstance(blocked.error, RailViolation)
    assert str(blocked.error).startswith("rail 'nonneg' blocked x: 'x >= 0' does not hold")
    assert [(r.name, r.verdict) for r in blocked.rails] == [("nonneg", "fail")]
    (root,) = tracer.spans  # no node span started
    assert root.status == "ERROR"
    (event,) = root.events
    assert (
        event.attributes["workbench.rail.port"] == "x"
        and event.attributes["workbench.rail.verdict"] == "fail"
    )
    ok = execute(flow, {"x": 1}, trust=True)
    assert ok.status == "ok" and [(r.name, r.port, r.verdict) for r in ok.rails] == [("nonneg", "x", "pass")]


def test_rails_on_node_inputs_block_before_the_node_runs():
    tracer = MemoryTracer()
    flow = loads(tool_flow('  small: {on: t.x, check: "x < 10"}\n', tool="off_by_one"))
    result = execute(flow, {"x": 10}, trust=True, tracer=tracer)
    assert result.status == "failed" and "rail 'small' blocked t.x" in str(result.error)


# -- repair ------------------------------------------------------------------------------------

REPAIR = TRADER.replace(
    'restricted: {on: analyst.order, check: "order.ticker not in RESTRICTED"}',
    'restricted: {on: analyst.order, check: "order.ticker not in RESTRICTED",'
    " enforce: repair, max_attempts: 2}",
)


def test_repair_re_asks_the_model_with_the_violation_explained():
    model, tracer = ScriptedModel(order(ticker="ACME"), order(ticker="IBM")), MemoryTracer()
    result = execute(loads(REPAIR), {"news": "n", "cash": 100.0}, model=model, tracer=tracer)
    assert result.status == "ok", result.error
    assert result.outputs["approved"]["ticker"] == "IBM"
    assert len(model.calls) == 2
    first, second = model.calls
    assert second[: len(first)] == first  # the original prompt, then the repair exchange
    assistant, user = second[len(first) :]
    assert assistant == {"role": "assistant", "content": json.dumps(order(ticker="ACME"))}
    assert user["role"] == "user" and "rail 'restricted' blocked analyst.order" in user["content"]
    assert "order.ticker not in RESTRICTED" in user["content"]
    restricted = [r.verdict for r in result.rails if r.name == "restricted"]
    assert restricted == ["fail", "pass"]
    (chat,) = tracer.by_name("chat")
    (repair,) = [e for e in chat.events if e.name == "repair"]
    assert repair.attributes["workbench.repair.round"] == 1


def test_repair_gives_up_after_max_attempts_and_blocks():
    model = ScriptedModel(*(order(ticker=t) for t in ("ACME", "GLOBX", "ACME", "IBM")))
    result = execute(loads(REPAIR), {"news": "n", "cash": 100.0}, model=model)
    assert result.status == "failed" and isinstance(result.error, RailViolation)
    assert "rail 'restricted' blocked analyst.order" in str(result.error)
    assert "'ticker': 'ACME'" in str(result.error)  # the last answer's values
    assert len(model.calls) == 3  # the first answer and max_attempts=2 repairs
    assert model.answers == [json.dumps(order(ticker="IBM"))]


def test_a_blocking_rail_is_not_repaired_even_next_to_a_repair_rail():
    flow = REPAIR.replace("enforce: decode", "enforce: block")
    model = ScriptedModel(order(ticker="ACME", qty=50), order())
    result = execute(loads(flow), {"news": "n", "cash": 100.0}, model=model)
    assert result.status == "failed" and "rail 'budget' blocked" in str(result.error)
    assert len(model.calls) == 1


# -- rails on a router's or a loop's outputs are checked like any other ------------------------
# (the verifier uses them as hypotheses downstream, so the runtime must hold them)

# test_executor's router flow with a rail on its ``tiny`` branch
ROUTED = (
    ROUTER_FLOW
    + """rails:
  odd: {on: route.tiny, check: "tiny > 1000"}
"""
)


def test_a_rail_on_the_taken_branch_of_a_router_is_checked():
    flow = loads(ROUTED)
    small = execute(flow, {"n": 5})
    assert small.status == "failed" and "odd" in str(small.error)
    big = execute(flow, {"n": 500})  # the rail's branch is not taken: not reached, not checked
    assert big.status == "ok" and big.outputs == {"big": 500}
    assert [r.name for r in big.rails] == []


def test_a_rail_on_a_loop_result_is_checked():
    from workbench.flow import Flow, Node

    flow = Flow("looped", inputs={"start": int}, outputs={"final": int})
    loop_ports = ({"init": int, "next": int}, {"item": int, "result": int})
    flow.add(Node("loop", "loop", *loop_ports, config={"max_iterations": 3}))
    flow.add(Node.tool("step", lambda x: {"y": x * 2}, inputs={"x": int}, outputs={"y": int}))
    flow.connect("start", "loop.init").connect("loop.item", "step.x").connect("step.y", "loop.next")
    flow.connect("loop.result", "final")
    flow.add_rail("never", "loop.result", "result >= 1000000")
    result = execute(flow, {"start": 3})
    assert result.status == "failed" and "never" in str(result.error)
    assert [(r.name, r.verdict) for r in result.rails] == [("never", "fail")]
    del flow.rails["never"]
    flow.add_rail("reached", "loop.result", "result >= 24")
    ok = execute(flow, {"start": 3})
    assert ok.status == "ok" and ok.outputs == {"final": 24}
