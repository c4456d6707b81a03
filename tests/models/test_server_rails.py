"""``serve-model`` honours a request's ``rails``: the official ``openai`` client, a real loopback
server, the built-in tiny model; every answer parses and keeps the rails."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from workbench.decoding import request_rails, type_of_schema
from workbench.errors import UsageError
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.server import running_server
from workbench.types import parse_type

ORDER = parse_type(
    {"side": {"enum": ["buy", "sell", "hold"]}, "ticker": {"str": {"pattern": "[A-Z]{1,5}"}},
     "qty": {"int": {"ge": 0}}, "price": {"float": {"gt": 0}}}
)  # fmt: skip
FORMAT = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER.to_json_schema()}}
RAILS = ["output.qty * output.price <= 50", "output.ticker != 'ACME'"]


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    with running_server(model, "default") as url:
        yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


def _ask(client: openai.OpenAI, seed: int, temperature: float, **extra) -> str:
    reply = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "ACME trades at 12.50. Propose one order as JSON."}],
        response_format=FORMAT,
        max_tokens=64, seed=seed, temperature=temperature, extra_body=extra,
    )  # fmt: skip
    return reply.choices[0].message.content or ""


def test_every_answer_keeps_the_rails(client):
    for i in range(10):
        order = json.loads(_ask(client, seed=i, temperature=0.6 + 0.1 * (i % 5), rails=RAILS))
        ORDER.validate(order)
        assert order["qty"] * order["price"] <= 50 and order["ticker"] != "ACME", order


def test_bad_rails_are_refused_with_a_reason(client):
    with pytest.raises(openai.BadRequestError) as info:
        _ask(client, 0, 0.0, rails=["output.qty * <= 50"])
    assert "column" in str(info.value) and "rails" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        _ask(
            client, 0, 0.0, rails=["output.qty >= 10", "output.qty * output.price <= 5", "output.price >= 1"]
        )
    message = str(info.value)
    assert "contradict" in message and "output.qty >= 10" in message and "output.price >= 1" in message
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
            extra_body={"rails": ["output.qty <= 3"]},
        )  # fmt: skip
    assert "json_schema" in str(info.value)


def test_json_schemas_become_types():
    assert type_of_schema(ORDER.to_json_schema()).validate(
        {"side": "buy", "ticker": "AB", "qty": 1, "price": 2.0}
    )
    positive = {"type": "integer", "exclusiveMinimum": 0}
    typ = type_of_schema({"type": "object", "properties": {"n": positive}, "required": ["n"]})
    with pytest.raises(Exception, match="minimum"):
        typ.validate({"n": 0})
    with pytest.raises(UsageError, match="all required"):
        type_of_schema({"type": "object", "properties": {"n": {"type": "integer"}}})


def test_requests_with_the_same_rails_share_one_plan():
    first = request_rails(ORDER.to_json_schema(), RAILS)
    again = request_rails(ORDER.to_json_schema(), list(RAILS))
    assert first.plan is again.plan and first is not again  # shared Z3 answers, own state
