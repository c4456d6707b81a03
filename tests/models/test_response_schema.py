"""The local runtime honours ``response_schema`` as a token constraint (llguidance)."""

from __future__ import annotations

import asyncio
import json

from workbench.models import GenerationRequest, resolve_model
from workbench.types import Enum, Int, Record

SCHEMA_TYPE = Record("Pick", colour=Enum("red", "green", "blue"), n=Int(ge=0, le=9))


def test_schema_answer_is_valid_even_for_a_prompt_the_model_never_saw():
    model = resolve_model("default")
    request = GenerationRequest(
        messages=[{"role": "user", "content": "Pick a colour and a digit, nothing else."}],
        response_schema=SCHEMA_TYPE.to_json_schema(),
        max_tokens=40,
    )
    (generation,) = asyncio.run(model.generate([request]))
    value = json.loads(generation.text)
    assert SCHEMA_TYPE.validate(value) == value
    assert generation.finish_reason == "constraint"


def test_without_a_schema_generation_is_unconstrained():
    model = resolve_model("default")
    free = GenerationRequest(prompt="News:", max_tokens=5, response_schema=None)
    (generation,) = asyncio.run(model.generate([free]))
    assert generation.finish_reason in ("length", "stop")
