"""Generation behaviour of LocalModel: constraints, seeds, stops, streaming, concurrency."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from workbench.models.base import Constraint, ConstraintState, GenerationRequest
from workbench.models.local import LocalModel
from workbench.models.tokenizer import Tokenizer


class DigitsState:
    """Allows only tokens whose text is made of digits; finished after ``length`` tokens."""

    def __init__(self, mask: np.ndarray, length: int, log: list[int]) -> None:
        self.mask, self.length, self.log = mask, length, log

    def allowed_tokens(self) -> np.ndarray:
        return self.mask

    def advance(self, token_id: int) -> None:
        self.log.append(token_id)

    def is_finished(self) -> bool:
        return len(self.log) >= self.length


class Digits:
    """A real (if simple) ``Constraint``: digit tokens only, a fixed number of them."""

    def __init__(self, length: int = 5, allow_nothing: bool = False) -> None:
        self.length, self.allow_nothing = length, allow_nothing
        self.logs: list[list[int]] = []

    def start(self, tokenizer: Tokenizer) -> ConstraintState:
        words = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int64)
        for t in range(tokenizer.vocab_size):
            text = tokenizer.decode([t])
            if text and text.isdigit() and not self.allow_nothing:
                words[t // 32] |= 1 << (t % 32)
        self.logs.append([])
        return DigitsState(words.astype(np.uint32).view(np.int32), self.length, self.logs[-1])


@pytest.fixture(scope="module")
def model(checkpoints) -> LocalModel:
    return LocalModel.from_pretrained(checkpoints["llama"].path)


def greedy(model: LocalModel, prompt: str, n: int = 16, **kw):
    [g] = model.generate_sync([GenerationRequest(prompt=prompt, max_tokens=n, **kw)])
    return g


def test_digits_constraint_is_obeyed(model):
    assert isinstance(Digits(), Constraint)
    for temperature in (0.0, 1.5):
        constraint = Digits(length=6)
        req = GenerationRequest(
            prompt="buy", max_tokens=20, temperature=temperature, seed=3, constraint=constraint
        )
        [gen] = model.generate_sync([req])
        assert gen.finish_reason == "constraint"
        assert gen.text.isdigit() and gen.output_tokens == 6
        assert constraint.logs == [gen.token_ids]  # the state saw every sampled token


def test_constrained_and_free_rows_share_a_batch(model):
    free = greedy(model, "hello world", 10)
    constraint = Digits(length=4)
    both = model.generate_sync(
        [
            GenerationRequest(prompt="hello world", max_tokens=10),
            GenerationRequest(prompt="qty", max_tokens=10, constraint=constraint),
        ]
    )
    assert both[0].token_ids == free.token_ids
    assert both[1].text.isdigit() and both[1].finish_reason == "constraint"


def test_constraint_allowing_nothing_finishes(model):
    gen = greedy(model, "x", 10, constraint=Digits(allow_nothing=True))
    assert gen.finish_reason == "constraint" and gen.token_ids == [] and gen.text == ""


def test_seeded_sampling_is_reproducible(model):
    a = greedy(model, "the", 20, temperature=1.0, top_k=50, top_p=0.9, seed=7)
    b = greedy(model, "the", 20, temperature=1.0, top_k=50, top_p=0.9, seed=7)
    c = greedy(model, "the", 20, temperature=1.0, top_k=50, top_p=0.9, seed=8)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids
    batched = model.generate_sync(
        [GenerationRequest(prompt="a longer prompt here", max_tokens=5), *[GenerationRequest(
            prompt="the", max_tokens=20, temperature=1.0, top_k=50, top_p=0.9, seed=7)]]
    )  # fmt: skip
    assert batched[1].token_ids == a.token_ids  # a row's stream depends on its seed, not its batch


def test_stop_string_cuts_the_text(model):
    full = greedy(model, "the quick", 24)
    text = full.text
    stop = next(text[i : i + 2] for i in range(4, len(text) - 2) if text[i : i + 2].isprintable())
    gen = greedy(model, "the quick", 24, stop=["never-in-output", stop])
    assert gen.finish_reason == "stop"
    assert gen.text == text[: text.find(stop)]
    assert gen.token_ids == full.token_ids[: len(gen.token_ids)]


def test_eos_stops_and_is_not_text(model):
    full = greedy(model, "hello", 12)
    eos = full.token_ids[5]
    first = full.token_ids.index(eos)
    model.engine.eos.add(eos)
    try:
        gen = greedy(model, "hello", 12)
    finally:
        model.engine.eos.discard(eos)
    assert gen.finish_reason == "stop"
    assert gen.token_ids == full.token_ids[:first]
    assert gen.output_tokens == first + 1  # the EOS token was sampled, so it counts


def test_max_tokens_zero_and_logprobs(model):
    gen = greedy(model, "hello", 0)
    assert gen.finish_reason == "length" and gen.token_ids == [] and gen.input_tokens > 0
    gen = greedy(model, "hello", 6, logprobs=True)
    assert len(gen.logprobs) == 6 and all(lp <= 0 for lp in gen.logprobs)
    assert greedy(model, "hello", 6).logprobs is None


def test_chat_messages_use_the_template(model):
    messages = [{"role": "user", "content": "buy ACME"}]
    rendered = model.tokenizer.apply_chat_template(messages)
    assert rendered == "<s><|im_start|>user\nbuy ACME<|im_end|>\n<|im_start|>assistant\n"
    [gen] = model.generate_sync([GenerationRequest(messages=messages, max_tokens=3)])
    assert gen.input_tokens == len(model.tokenizer.encode(rendered, add_special_tokens=False))
    assert model.tokenizer.encode(rendered, add_special_tokens=False)[0] == 0  # one BOS, from the template


async def _collect(model: LocalModel, request: GenerationRequest):
    return [event async for event in model.stream(request)]


def test_stream_yields_the_same_text_as_generate(model):
    for stop in ((), ("e",)):
        request = GenerationRequest(prompt="the lazy", max_tokens=15, stop=stop)
        events = asyncio.run(_collect(model, request))
        [gen] = model.generate_sync([request])
        assert "".join(e.text for e in events) == gen.text
        assert events[-1].finish_reason == gen.finish_reason
        assert all(e.finish_reason is None for e in events[:-1])
        assert [e.token_id for e in events][: len(gen.token_ids)] == gen.token_ids


def test_concurrent_calls_batch_together_and_match(model):
    prompts = ["the quick", "buy 10", "hello", '{"side"']
    expected = [greedy(model, p, 8).token_ids for p in prompts]
    runs: list[int] = []
    run = model.engine.run
    model.engine.run = lambda jobs, **kw: (runs.append(len(jobs)), run(jobs, **kw))[1]

    async def main():
        calls = [model.generate([GenerationRequest(prompt=p, max_tokens=8)]) for p in prompts]
        stream = _collect(model, GenerationRequest(prompt=prompts[0], max_tokens=8))
        *gens, events = await asyncio.gather(*calls, stream)
        return [g[0] for g in gens], events

    try:
        gens, events = asyncio.run(main())
    finally:
        del model.engine.run
    assert [g.token_ids for g in gens] == expected
    assert [e.token_id for e in events] == expected[0]
    assert len(runs) < 5  # some requests shared a batch (from its start, or by joining it)


def test_leaving_a_stream_early_keeps_the_model_usable(model):
    async def main():
        async for _event in model.stream(GenerationRequest(prompt="the", max_tokens=50)):
            break
        return await model.generate([GenerationRequest(prompt="the", max_tokens=4)])

    [gen] = asyncio.run(main())
    assert gen.output_tokens == 4


class BrokenState:
    """Allows everything and raises on its third ``advance``."""

    def __init__(self) -> None:
        self.calls = 0

    def allowed_tokens(self) -> None:
        return None

    def advance(self, token_id: int) -> None:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("constraint broke")

    def is_finished(self) -> bool:
        return False


class Broken:
    """A constraint whose states break mid-sequence."""

    def start(self, tokenizer: Tokenizer) -> ConstraintState:
        return BrokenState()


def test_a_raising_constraint_fails_only_its_request(model):
    good = GenerationRequest(prompt="hello", max_tokens=6)
    bad = GenerationRequest(prompt="hello", max_tokens=6, constraint=Broken())
    with pytest.raises(RuntimeError, match="constraint broke"):
        model.generate_sync([good, bad])

    async def main():
        return await asyncio.gather(model.generate([good]), model.generate([bad]), return_exceptions=True)

    ok, failed = asyncio.run(main())
    assert ok[0].output_tokens == 6 and ok[0].token_ids == greedy(model, "hello", 6).token_ids
    assert isinstance(failed, RuntimeError)
    with pytest.raises(RuntimeError, match="constraint broke"):
        asyncio.run(_collect(model, bad))


def test_requests_join_a_running_batch(model):
    """Continuous batching: a request sent mid-generation joins and finishes first, unchanged."""
    model = LocalModel(model.transformer, model.tokenizer, name="cb", continuous_batching=True)
    alone = greedy(model, "buy 10", 6)
    sampled_alone = greedy(model, "hello", 6, temperature=1.0, seed=11)

    async def main():
        order: list[str] = []
        long_events = []

        async def long():
            async for event in model.stream(GenerationRequest(prompt="the quick", max_tokens=200)):
                long_events.append(event)
                if len(long_events) == 3:
                    started.set()
            order.append("long")

        async def short(prompt: str, **kw):
            await started.wait()
            [gen] = await model.generate([GenerationRequest(prompt=prompt, max_tokens=6, **kw)])
            order.append(prompt)
            return gen

        started = asyncio.Event()
        _, a, b = await asyncio.gather(long(), short("buy 10"), short("hello", temperature=1.0, seed=11))
        return order, a, b, long_events

    runs: list[int] = []
    run = model.engine.run
    model.engine.run = lambda jobs, **kw: (runs.append(len(jobs)), run(jobs, **kw))[1]
    try:
        order, a, b, long_events = asyncio.run(main())
    finally:
        del model.engine.run
    assert runs == [1]  # both short requests joined the long one's batch
    assert order[-1] == "long"
    assert a.token_ids == alone.token_ids
    assert b.token_ids == sampled_alone.token_ids  # its seeded stream starts at its own first step
    assert [e.token_id for e in long_events] == greedy(model, "the quick", 200).token_ids
