"""The trust rule: an untrusted flow runs only registered safe tools, hands no secret to a
model it names, and its prompts render in a sandbox that cannot change the run's values."""

from __future__ import annotations

import sys
import textwrap

import pytest

import workbench
from workbench.errors import TrustError
from workbench.examples import flow_path
from workbench.flow import Flow, Node, load, loads
from workbench.runtime import Executor, execute
from workbench.runtime.trust import SAFE_TOOLS, safe_tool

from .test_rails_runtime import ScriptedModel, order

TRADER_INPUTS = {"news": "IBM up", "cash": 100.0}
ORDER = order()


def touch(path: str) -> dict:
    """A tool from outside the workbench package with a visible effect: it creates ``path``."""
    with open(path, "w", encoding="utf-8") as file:
        file.write("ran")
    return {}


@safe_tool
def shout(text: str) -> dict:
    return {"loud": text.upper()}


def write(path, text: str):
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


API_RUN_NODE = """
  run:
    kind: tool
    tool: workbench.api:run
    inputs: {flow: str, trust: bool, trace: bool, path: str}
"""
API_RUN_WIRES = """
wires:
  - flow -> run.flow
  - trust -> run.trust
  - trace -> run.trace
  - path -> run.path
"""


@pytest.fixture
def escalation(tmp_path):
    """An untrusted flow whose tool ``workbench.api:run`` runs another flow with trust=True,
    which imports and calls ``touch`` from outside the package: the hole this closes."""
    write(
        tmp_path / "inner.flow.yaml",
        f"""
        flow: inner
        inputs: {{path: str}}
        nodes:
          t: {{kind: tool, tool: '{__name__}:touch', inputs: {{path: str}}}}
        wires: [path -> t.path]
        """,
    )
    outer = tmp_path / "outer.flow.yaml"
    outer.write_text(
        "flow: outer\ninputs: {flow: str, trust: bool, trace: bool, path: str}\nnodes:"
        + API_RUN_NODE
        + API_RUN_WIRES,
        encoding="utf-8",
    )
    marker = tmp_path / "marker"
    inputs = {"flow": str(tmp_path / "inner.flow.yaml"), "trust": True, "trace": False, "path": str(marker)}
    return outer, inputs, marker


def test_an_untrusted_flow_cannot_run_another_flow_trusted(escalation):
    outer, inputs, marker = escalation
    with pytest.raises(TrustError) as info:
        workbench.run(outer, inputs, trace=False)
    assert not marker.exists()  # refused while planning: nothing ran
    assert str(info.value) == (
        "flow 'outer', node 'run': tool 'workbench.api:run' is not in the registry of safe tools "
        "(workbench.runtime.trust), so this flow may not run it untrusted: importing or calling arbitrary "
        "code could do anything. If you trust this flow, pass --trust on the command line or trust=True "
        "in Python, which allows any importable tool"
    )
    with pytest.raises(TrustError):
        Executor(load(outer))
    assert not marker.exists()


def test_the_refusal_covers_sub_flows_before_any_node_runs(escalation, tmp_path):
    _, inputs, marker = escalation
    ports = {"flow": str, "trust": bool, "trace": bool, "path": str}
    hidden = Flow("hidden", inputs=ports).add(Node.tool("run", "workbench.api:run", inputs=ports, outputs={}))
    for port in ports:
        hidden.connect(port, f"run.{port}")
    wrapper = Flow("wrapper", inputs={**ports, "note": str})
    # a function handed over in Python is trusted, and this one would run first
    wrapper.add(Node.tool("early", touch, inputs={"path": str}, outputs={}), hidden.as_node("sub"))
    wrapper.connect("note", "early.path")
    for port in ports:
        wrapper.connect(port, f"sub.{port}")
    first = tmp_path / "first"
    with pytest.raises(TrustError, match=r"flow 'hidden', node 'run': tool 'workbench\.api:run' is not in"):
        execute(wrapper, {**inputs, "note": str(first)})
    assert not first.exists() and not marker.exists()
    assert execute(wrapper, {**inputs, "note": str(first)}, trust=True).status == "failed"  # run: no dict
    assert first.exists() and marker.exists()


def test_with_trust_any_importable_tool_runs(escalation):
    outer, inputs, marker = escalation
    execute(load(outer), inputs, trust=True)  # the outer node then fails: run returns no dict
    assert marker.read_text() == "ran"


def test_untrusted_flows_import_nothing_outside_the_safe_tool_modules(tmp_path, monkeypatch):
    (tmp_path / "wb_trust_probe.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_suffix('.ran').touch()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for ref in ("wb_trust_probe:f", "workbench.examples.support:re.sub", "workbench.api:run", "os:system"):
        flow = Flow("f").add(Node.tool("n", ref, inputs={}, outputs={}))
        with pytest.raises(TrustError, match=f"tool '{ref}' is not in the registry of safe tools"):
            Executor(flow)
    assert "wb_trust_probe" not in sys.modules and not (tmp_path / "wb_trust_probe.ran").exists()


def test_registered_safe_tools_run_untrusted():
    result = workbench.run("triage", ticket="Invoice wrong, call +1 555 123 4567", tier="pro", trace=False)
    assert result.status == "ok" and result.outputs["reply"]["category"] == "billing"
    assert execute(load(flow_path("trader")), TRADER_INPUTS, model=ScriptedModel(ORDER)).status == "ok"
    assert {
        "workbench.examples.support:redact",
        "workbench.examples.support:classify",
        "workbench.examples.support:prioritise",
        "workbench.examples.support:summarise",
        "workbench.examples.trading:risk_check",
    } <= set(SAFE_TOOLS)
    flow = Flow("mine", inputs={"text": str}, outputs={"loud": str})
    flow.add(Node.tool("n", f"{__name__}:shout", inputs={"text": str}, outputs={"loud": str}))
    flow.connect("text", "n.text").connect("n.loud", "loud")
    assert execute(flow, {"text": "hi"}).outputs == {"loud": "HI"}  # registered with @safe_tool


SECRET_MODEL = """
flow: leak
inputs: {q: str}
outputs: {a: str}
models:
  remote: {openai: {base_url: "http://127.0.0.1:9/v1", model: m, api_key_env: WB_TEST_SECRET}}
nodes:
  ask: {kind: llm, model: MODEL, prompt: "{{ q }}", inputs: {q: str}, outputs: {a: str}}
wires: [q -> ask.q, ask.a -> a]
"""


@pytest.mark.parametrize(
    "model",
    [
        "remote",
        '{openai: {base_url: "http://127.0.0.1:9/v1", api_key_env: WB_TEST_SECRET}}',
    ],
)
def test_an_untrusted_flow_may_not_send_an_environment_secret_to_its_model(model):
    flow = loads(SECRET_MODEL.replace("MODEL", model))
    with pytest.raises(TrustError) as info:
        Executor(flow)
    assert str(info.value) == (
        "flow 'leak', node 'ask': the model spec reads the environment variable 'WB_TEST_SECRET' "
        "(api_key_env) and sends it to 'http://127.0.0.1:9/v1', which an untrusted flow may not do. If you "
        "trust this flow, pass --trust on the command line or trust=True in Python; or give the model "
        "yourself with --model / model="
    )
    Executor(flow, trust=True)  # planning needs no model: nothing is sent
    assert execute(flow, {"q": "hi"}, model=ScriptedModel('"ok"')).outputs == {"a": "ok"}


def test_prompts_cannot_change_the_values_they_render():
    flow = loads(
        textwrap.dedent(
            """
            flow: sneaky
            inputs: {items: {list: int}}
            outputs: {a: str, seen: {list: int}}
            constants: {LIMITS: {max: 10}}
            nodes:
              ask: {kind: llm, prompt: "PROMPT", inputs: {items: {list: int}}, outputs: {a: str}}
            wires: [items -> ask.items, ask.a -> a, items -> seen]
            """
        ).replace("PROMPT", "{{ items.append(99) }}{{ LIMITS.update(max=10**9) }}")
    )
    items = [1, 2]
    result = execute(flow, {"items": items}, model=ScriptedModel('"ok"'))
    assert result.status == "failed"
    assert str(result.error) == (
        "node 'ask' failed: rendering the prompt failed: "
        "access to attribute 'append' of 'list' object is unsafe."
    )
    assert items == [1, 2] and flow.constants["LIMITS"] == {"max": 10}
