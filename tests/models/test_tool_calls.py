"""Tool calls on the local runtime: the grammar makes every call well-formed, even from random weights."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("llguidance")

from workbench.errors import UsageError
from workbench.models.base import GenerationRequest
from workbench.models.local import LocalModel
from workbench.models.tool_calls import parse_tool_calls, tool_choice

from .tool_schemas import tool_schemas, valid


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> LocalModel:
    from .model_checkpoints import make_checkpoint

    checkpoint = make_checkpoint(tmp_path_factory.mktemp("tools") / "llama", "llama", seed=3)
    return LocalModel.from_pretrained(checkpoint.path, device="cpu")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tools=tool_schemas(), data=st.data())
def test_every_call_of_a_random_model_parses_and_fits_its_schema(
    random_model: LocalModel, tools, data
) -> None:
    names = [t["function"]["name"] for t in tools]
    choice = data.draw(
        st.sampled_from(["required", *({"type": "function", "function": {"name": n}} for n in names)])
    )
    request = GenerationRequest(
        messages=[{"role": "user", "content": "call"}],
        tools=tools,
        tool_choice=choice,
        max_tokens=240,
        temperature=1.0,
        seed=data.draw(st.integers(0, 2**31)),
        parallel_tool_calls=data.draw(st.booleans()),
    )
    (generation,) = random_model.generate_sync([request])
    if not request.parallel_tool_calls:  # one call, then the grammar ends: always complete
        assert generation.finish_reason == "tool_calls", generation.text
    assert generation.tool_calls  # parallel calls may run out of tokens: the finished ones count
    if isinstance(choice, dict):
        assert [c.name for c in generation.tool_calls] == [choice["function"]["name"]]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    for call in generation.tool_calls:
        assert valid(json.loads(call.arguments), schemas[call.name]), (call, schemas[call.name])


def test_unconstrained_the_same_model_writes_no_valid_call(random_model: LocalModel) -> None:
    # the peer of the property above: without the grammar a random model writes noise
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    ]
    request = GenerationRequest(prompt="call", max_tokens=40, temperature=1.0, seed=1)
    (generation,) = random_model.generate_sync([request])
    assert parse_tool_calls(generation.text)[1] == []
    constrained = GenerationRequest(
        messages=[{"role": "user", "content": "call"}],
        tools=tools,
        tool_choice="required",
        max_tokens=120,
        temperature=1.0,
        seed=1,
        parallel_tool_calls=False,
    )
    (call,) = random_model.generate_sync([constrained])[0].tool_calls
    assert (call.name, json.loads(call.arguments)) == ("f", {})


def test_parallel_calls_are_separate_blocks_and_one_call_when_not_parallel(random_model: LocalModel) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["x"],
        "additionalProperties": False}}}]  # fmt: skip
    counts = set()
    for seed in range(12):
        for parallel in (True, False):
            request = GenerationRequest(messages=[{"role": "user", "content": "call"}], tools=tools,
                                        tool_choice="required", max_tokens=200, temperature=1.0, seed=seed,
                                        parallel_tool_calls=parallel)  # fmt: skip
            (generation,) = random_model.generate_sync([request])
            if not parallel:
                assert len(generation.tool_calls) == 1
            else:
                counts.add(len(generation.tool_calls))
            assert len({c.id for c in generation.tool_calls}) == len(generation.tool_calls)
    assert max(counts) > 1  # a random model ends a call with another one now and then


def test_parse_tool_calls_reads_blocks_and_keeps_the_rest() -> None:
    text = (
        'Let me look.\n<tool_call>\n{"name": "quote", "arguments": {"ticker": "BOLT"}}\n</tool_call>\n'
        "<tool_call>\nnot json\n</tool_call>"
    )
    rest, calls = parse_tool_calls(text)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("quote", {"ticker": "BOLT"})]
    assert rest.startswith("Let me look.") and "not json" in rest
    assert parse_tool_calls("plain answer") == ("plain answer", [])


@pytest.mark.parametrize(
    ("tools", "choice", "needle"),
    [
        ([{"type": "function", "function": {"name": "a"}}] * 2, "auto", "offered twice"),
        ([{"type": "retrieval"}], "auto", "tools[0] must be"),
        ([], "required", "no tools are offered"),
        ([{"type": "function", "function": {"name": "a"}}], {"type": "function"}, "a named tool_choice"),
        ([{"type": "function", "function": {"name": "a", "parameters": []}}], "auto", "JSON Schema object"),
    ],
)
def test_bad_tools_are_refused_with_the_reason(tools, choice, needle) -> None:
    with pytest.raises(UsageError, match=re.escape(needle)):
        tool_choice(tools, choice)


def test_the_tiny_models_template_renders_tools_and_calls_as_transformers_does() -> None:
    transformers = pytest.importorskip("transformers")
    import random

    from workbench.models.corpus import DESK_TOOLS, make_desk_example
    from workbench.models.local import DEFAULT_MODEL_DIR
    from workbench.models.tokenizer import Tokenizer

    hf = transformers.AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    ours = Tokenizer.from_directory(DEFAULT_MODEL_DIR)
    rng = random.Random(0)
    for _ in range(20):
        messages = make_desk_example(rng).messages()
        expected = hf.apply_chat_template(messages, tools=list(DESK_TOOLS), tokenize=False)
        assert ours.apply_chat_template(messages, add_generation_prompt=False, tools=DESK_TOOLS) == expected
    assert "Tools: quote(ticker), buy(ticker, qty, price)" in expected
    assert '<tool_call>\n{"name": "quote", "arguments": {"ticker": ' in expected


BUY = {"type": "object", "properties": {"ticker": {"type": "string", "pattern": "^[A-Z]{1,3}$"},
       "qty": {"type": "integer", "minimum": 1, "maximum": 999},
       "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 99}},
       "required": ["ticker", "qty", "price"], "additionalProperties": False}  # fmt: skip


def test_decode_rails_on_a_tool_shape_its_arguments(random_model: LocalModel) -> None:
    from workbench.decoding import request_rails

    tools = [{"type": "function", "function": {"name": "buy", "parameters": BUY}}]
    over = done = 0
    for seed in range(8):
        base = dict(messages=[{"role": "user", "content": "call"}], tools=tools, tool_choice="required",
                    max_tokens=240, temperature=1.0, seed=seed, parallel_tool_calls=False)  # fmt: skip
        hook = request_rails(BUY, ["output.qty * output.price <= 50"])
        (railed,) = random_model.generate_sync([GenerationRequest(**base, tool_rails={"buy": hook})])
        for call in railed.tool_calls:  # none when a random model's long fraction ran out of tokens
            args = json.loads(call.arguments)
            assert valid(args, BUY) and args["qty"] * args["price"] <= 50, args
            done += 1
        (free,) = random_model.generate_sync([GenerationRequest(**base)])
        over += any(
            json.loads(c.arguments)["qty"] * json.loads(c.arguments)["price"] > 50 for c in free.tool_calls
        )
    assert done >= 5
    assert over > 0  # without the rails the same model overspends: the mask did the work
