"""The shipped tiny model (``model: default``) and the corpus it was trained on."""

from __future__ import annotations

import asyncio
import json
import re

import jinja2
import pytest

from workbench.models.corpus import (
    ORDER_SCHEMA,
    OVERSPEND_RATE,
    make_corpus,
    order_within_cash,
    trader_prompt,
)
from workbench.types import parse_named_types

ORDER = parse_named_types(
    {
        "Side": {"enum": ["buy", "sell", "hold"]},
        "Order": {
            "side": "Side",
            "ticker": {"str": {"pattern": "[A-Z]{1,5}"}},
            "qty": {"int": {"ge": 0}},
            "price": {"float": {"gt": 0}},
        },
    }
)["Order"]


# ---- the corpus ---------------------------------------------------------------------------


def test_corpus_is_reproducible_from_its_seed() -> None:
    assert make_corpus(50, seed=3) == make_corpus(50, seed=3)
    assert make_corpus(50, seed=3) != make_corpus(50, seed=4)


def test_trader_examples_are_the_flow_prompt_and_a_valid_order() -> None:
    examples = [ex for ex in make_corpus(2000, seed=11) if ex.task == "trader"]
    template = jinja2.Template("News: {{ news }}\nCash: {{ cash }}\nPropose one order as JSON.")
    over = 0
    for ex in examples:
        news, cash = re.fullmatch(r"News: (.*)\nCash: (.*)\nPropose one order as JSON\.", ex.prompt).groups()
        value = float(cash) if "." in cash else int(cash)  # what the flow's float input renders as
        assert template.render(news=news, cash=value) == ex.prompt == trader_prompt(news, cash)
        order = json.loads(ex.answer)
        assert ORDER.validate(order) == order and list(order) == list(ORDER_SCHEMA["properties"])
        assert order["ticker"] in news and json.dumps(order["price"]) in news
        assert (order["qty"] == 0) == (order["side"] == "hold") or order["price"] > ex.labels["cash"]
        over += not order_within_cash(order, ex.labels["cash"])
    assert 0 < over / len(examples) < 2.5 * OVERSPEND_RATE


def test_heldout_phrasings_never_occur_in_training_data() -> None:
    def shape(prompt: str) -> str:  # the phrasing with names and numbers taken out
        return re.sub(r"[A-Z][a-z]+ [A-Z][a-z]+|[A-Z]{2,5}|[\d.]+", "_", prompt.split("\n")[0])

    train = {shape(ex.prompt) for ex in make_corpus(3000, seed=5, triage_share=0.0)}
    held = {shape(ex.prompt) for ex in make_corpus(300, seed=6, triage_share=0.0, heldout_templates=True)}
    assert not train & held


def test_triage_examples_match_the_triage_flow_types() -> None:
    examples = [ex for ex in make_corpus(400, seed=8) if ex.task == "triage"]
    assert examples
    for ex in examples:
        answer = json.loads(ex.answer)
        assert answer["category"] in ("billing", "bug", "other") and 0 <= answer["urgency"] <= 3
        assert ex.prompt.startswith("Ticket: ") and ex.prompt.endswith("\nClassify the ticket as JSON.")


# ---- the shipped model --------------------------------------------------------------------

torch = pytest.importorskip("torch")
from workbench.models.base import GenerationRequest  # noqa: E402
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel  # noqa: E402

needs_model = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="the tiny model is not trained"
)
# New tickers, prices and cash (a seed training never used) in the training phrasings.
HELDOUT = make_corpus(16, seed=2468, triage_share=0.0)


@pytest.fixture(scope="module")
def tiny() -> LocalModel:
    from workbench.models.registry import resolve_model

    model = resolve_model("default")
    assert isinstance(model, LocalModel)
    return model


@needs_model
def test_shipped_files_are_complete_and_small() -> None:
    names = {p.name for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()) <= 20 * 1024 * 1024
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "chat_template" in json.loads((DEFAULT_MODEL_DIR / "tokenizer_config.json").read_text())


@needs_model
def test_answers_heldout_trader_prompts_with_schema_valid_orders(tiny: LocalModel) -> None:
    requests = [GenerationRequest(messages=ex.messages(with_answer=False), max_tokens=48) for ex in HELDOUT]
    gens = asyncio.run(tiny.generate(requests))
    sides = tickers = 0
    for ex, gen in zip(HELDOUT, gens):
        assert gen.finish_reason == "stop", gen.text
        order = json.loads(gen.text)
        assert ORDER.validate(order) == order and list(order) == list(ORDER_SCHEMA["properties"])
        sides += order["side"] == ex.labels["side"]
        tickers += order["ticker"] == ex.labels["ticker"]
    assert sides >= 0.9 * len(HELDOUT) and tickers >= 0.9 * len(HELDOUT), (sides, tickers)


@needs_model
def test_our_runtime_decodes_like_transformers(tiny: LocalModel) -> None:
    transformers = pytest.importorskip("transformers")
    reference = transformers.LlamaForCausalLM.from_pretrained(DEFAULT_MODEL_DIR, dtype=torch.float32).eval()
    for ex in HELDOUT[:4]:
        [gen] = asyncio.run(tiny.generate([GenerationRequest(messages=ex.messages(False), max_tokens=40)]))
        prompt = tiny.tokenizer.apply_chat_template(ex.messages(False), add_generation_prompt=True)
        ids = torch.tensor([tiny.tokenizer.encode(prompt, add_special_tokens=False)])
        with torch.no_grad():
            out = reference.generate(
                ids,
                max_new_tokens=40,
                do_sample=False,
                eos_token_id=reference.config.eos_token_id,
                pad_token_id=reference.config.pad_token_id,
            )
        want = out[0, ids.shape[1] :].tolist()
        assert gen.token_ids == want[: len(gen.token_ids)] and len(want) - len(gen.token_ids) <= 1
