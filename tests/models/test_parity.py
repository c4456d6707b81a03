"""Our runtime against ``transformers`` on the same saved checkpoint, family by family."""

from __future__ import annotations

import pytest
import torch

from workbench.models.base import GenerationRequest
from workbench.models.engine import Engine, Job
from workbench.models.local import LocalModel

from .model_checkpoints import FAMILIES, make_checkpoint

PROMPTS = ["the quick brown", "buy 10 shares of ACME at", "hello"]


def hf_greedy(hf: torch.nn.Module, ids: list[int], n: int) -> list[int]:
    """transformers' greedy continuation of one unpadded prompt (no EOS stop)."""
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, len(ids) :].tolist()


@pytest.fixture(scope="module")
def models(checkpoints) -> dict[str, LocalModel]:
    return {family: LocalModel.from_pretrained(ck.path) for family, ck in checkpoints.items()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_match_transformers(family, checkpoints, models):
    ck, ours = checkpoints[family], models[family]
    ids = torch.randint(0, ours.config.vocab_size, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ck.hf(ids).logits  # [3,24,V]
        got = ours.transformer(ids)  # [3,24,V]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_matches_transformers_unbatched_and_batched(family, checkpoints, models):
    ck, ours = checkpoints[family], models[family]
    n = 10
    requests = [GenerationRequest(prompt=p, max_tokens=n) for p in PROMPTS]
    expected = [hf_greedy(ck.hf, ours.tokenizer.encode(p), n) for p in PROMPTS]
    for request, want in zip(requests, expected):
        [alone] = ours.generate_sync([request])
        assert alone.token_ids == want
    together = ours.generate_sync(requests)  # different prompt lengths: right padding
    assert [g.token_ids for g in together] == expected
    assert all(g.finish_reason == "length" and g.output_tokens == n for g in together)
    assert [g.input_tokens for g in together] == [len(ours.tokenizer.encode(p)) for p in PROMPTS]


def test_sharded_checkpoint_loads_the_same(tmp_path, checkpoints, models):
    sharded = make_checkpoint(tmp_path / "sharded", "qwen2", shard=True)
    assert (sharded.path / "model.safetensors.index.json").exists()
    assert len(list(sharded.path.glob("*.safetensors"))) > 1
    ours = LocalModel.from_pretrained(sharded.path)
    ids = torch.arange(40)[None] % ours.config.vocab_size  # [1,40]
    with torch.no_grad():
        torch.testing.assert_close(ours.transformer(ids), sharded.hf(ids).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_close_to_fp32(dtype, checkpoints, models):
    ck = checkpoints["qwen3"]
    half = LocalModel.from_pretrained(ck.path, dtype=dtype)
    assert half.transformer.embed_tokens.weight.dtype == dtype
    ids = torch.arange(16)[None]  # [1,16]
    with torch.no_grad():
        ref = models["qwen3"].transformer(ids)
        got = half.transformer(ids).float()
    assert (got - ref).abs().max() < 0.1 * ref.abs().max()
    [gen] = half.generate_sync([GenerationRequest(prompt="hello", max_tokens=4)])
    assert gen.output_tokens == 4


def test_tied_embeddings_share_one_tensor(models):
    smol = models["smollm2"].transformer
    assert smol.lm_head.weight.data_ptr() == smol.embed_tokens.weight.data_ptr()


def test_llama3_rope_scaling_is_read(models):
    assert models["llama3"].config.rope_scaling["rope_type"] == "llama3"
    assert models["llama"].config.rope_scaling is None


def test_whole_cache_decode_matches(models):
    """The static-shape decode path (what torch.compile runs) gives the same tokens as eager."""
    model = models["qwen2"]
    whole = Engine(model.transformer, model.tokenizer)
    whole.compiled = True  # attend over every cache slot, masked, without compiling here
    ids = [model.tokenizer.encode(p) for p in PROMPTS]
    jobs = [
        Job(request=GenerationRequest(prompt=p, max_tokens=8), prompt_ids=i) for p, i in zip(PROMPTS, ids)
    ]
    expected = model.generate_sync([GenerationRequest(prompt=p, max_tokens=8) for p in PROMPTS])
    assert [g.token_ids for g in whole.run(jobs)] == [g.token_ids for g in expected]
