"""Fused sampling: the rule, its reference, and the Triton kernel drawing the same tokens."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.kernels import reference, sample_tokens, triton_ops
from workbench.kernels.sampling import gumbel_noise, uniform_noise


def params(B: int, temperature=1.0, top_k=0, top_p=1.0, seed=None) -> dict:
    as_list = lambda v: v if isinstance(v, list) else [v] * B
    return {
        "temperature": torch.tensor(as_list(temperature), dtype=torch.float32),
        "top_k": torch.tensor(as_list(top_k), dtype=torch.int32),
        "top_p": torch.tensor(as_list(top_p), dtype=torch.float32),
        "seed": torch.tensor(seed if seed is not None else list(range(B)), dtype=torch.int64),
    }


def random_mask(B: int, V: int, p_allowed: float = 0.7) -> torch.Tensor:
    allowed = torch.rand(B, V) < p_allowed
    words = torch.zeros(B, (V + 31) // 32, dtype=torch.int64)
    for t in range(V):
        words[:, t // 32] |= allowed[:, t].long() << (t % 32)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


# ---------------------------------------------------------------------------------------------
# The noise
# ---------------------------------------------------------------------------------------------
def test_uniform_noise_is_pinned() -> None:
    # Changing the hash changes every sampled token of every seeded run: it must be deliberate.
    u = uniform_noise(torch.tensor([0, 1, -1, 2**40]), 3, 4)
    want = [
        [0.8762018084526062, 0.29459506273269653, 0.3129236102104187, 0.7880050539970398],
        [0.12152522802352905, 0.8463091254234314, 0.9296776652336121, 0.44560831785202026],
        [0.3827980160713196, 0.3551097512245178, 0.4564111828804016, 0.8654163479804993],
        [0.7706130146980286, 0.7758148312568665, 0.15502041578292847, 0.9362872242927551],
    ]
    assert torch.equal(u, torch.tensor(want, dtype=torch.float32))


def test_uniform_noise_looks_uniform_and_depends_on_seed_and_step() -> None:
    u = uniform_noise(torch.arange(32), 0, 4096)  # [32, 4096]
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.std().item() - math.sqrt(1 / 12)) < 0.005
    assert not torch.equal(u, uniform_noise(torch.arange(32), 1, 4096))
    assert (u[0] != u[1]).float().mean() > 0.99


# ---------------------------------------------------------------------------------------------
# The rule, checked against a brute-force reading of the docstring
# ---------------------------------------------------------------------------------------------
def brute_force(
    logits: list[float], allowed: list[bool], temp: float, k: int, p: float, g: list[float]
) -> int:
    cand = [t for t in range(len(logits)) if allowed[t] and logits[t] > -math.inf]
    if not cand:
        return -1
    if temp <= 0:
        return max(cand, key=lambda t: (logits[t], -t))
    s = {t: torch.tensor(logits[t]).float().div(temp).item() for t in cand}
    if 0 < k < len(cand):
        kth = sorted(s.values(), reverse=True)[k - 1]
        cand = [t for t in cand if s[t] >= kth]
    if p < 1:
        top = max(s[t] for t in cand)
        w = {t: math.exp(s[t] - top) for t in cand}
        z = sum(w.values())
        nucleus = [t for t in cand if sum(w[u] for u in cand if s[u] > s[t]) < p * z]
        cand = nucleus or [t for t in cand if s[t] == top]  # the best token always survives
    return max(cand, key=lambda t: (s[t] + g[t], -t))


@settings(max_examples=150, deadline=None)
@given(
    logits=st.lists(st.integers(-6, 6), min_size=1, max_size=12),  # small integers: many ties
    temp=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    k=st.integers(0, 13),
    p=st.sampled_from([0.0, 0.3, 0.6, 0.9, 1.0]),
    mask_bits=st.integers(0, 2**12 - 1),
    seed=st.integers(-(2**63), 2**63 - 1),
    step=st.integers(0, 2**40),
)
def test_reference_follows_the_documented_rule(logits, temp, k, p, mask_bits, seed, step) -> None:
    V = len(logits)
    x = torch.tensor([logits], dtype=torch.float32) / 2  # halves keep ties exact
    mask = torch.tensor([[mask_bits - 2**32 if mask_bits >= 2**31 else mask_bits]], dtype=torch.int32)
    allowed = [bool(mask_bits >> t & 1) for t in range(V)]
    g = gumbel_noise(torch.tensor([seed]), step, V)[0].tolist()
    got = reference.sample_tokens(x, bitmask=mask, **params(1, temp, k, p, [seed]), step=step)
    assert got.item() == brute_force(x[0].tolist(), allowed, temp, k, p, g)


def test_frequencies_match_the_filtered_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    n = 8000
    rows = logits.expand(n, -1)

    def freqs(**kw) -> torch.Tensor:
        tokens = reference.sample_tokens(rows, bitmask=None, **params(n, seed=list(range(n)), **kw), step=5)
        return torch.bincount(tokens, minlength=6).float() / n

    p = torch.softmax(logits / 0.7, -1)
    assert (freqs(temperature=0.7) - p).abs().max() < 0.025  # ~4.5 standard errors
    f = freqs(top_k=2)
    assert (f[:2] - torch.softmax(logits[:2], -1)).abs().max() < 0.025 and f[2:].sum() == 0
    # top_p=0.8: {0, 1} hold 0.67 < 0.8, so token 2 (mass above it 0.67) survives; token 3 does not.
    nucleus = torch.softmax(logits[:3], -1)
    f = freqs(top_p=0.8)
    assert (f[:3] - nucleus).abs().max() < 0.025 and f[3:].sum() == 0


def test_greedy_ties_masks_and_empty_rows() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [5.0, 1.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[0b1111], [0b1110], [0]], dtype=torch.int32)
    greedy = sample_tokens(logits, bitmask=mask, **params(3, temperature=0.0), step=0)
    assert greedy.tolist() == [1, 2, -1]  # ties -> lowest id; token 0 of row 1 masked; row 2 empty
    for step in range(8):  # top_k=1 keeps both tied tokens (ties at the edge survive)
        drawn = sample_tokens(logits, bitmask=mask, **params(3, top_k=1), step=step).tolist()
        assert drawn[0] in (1, 2) and drawn[1] in (2, 3) and drawn[2] == -1


def test_masked_tokens_are_never_drawn() -> None:
    logits = torch.randn(64, 50) * 3
    mask = random_mask(64, 50, 0.2)
    allowed = reference.apply_token_bitmask(torch.zeros(64, 50), mask) == 0
    for step in range(5):
        tokens = reference.sample_tokens(logits, bitmask=mask, **params(64, temperature=2.0), step=step)
        ok = torch.where(tokens >= 0, allowed[torch.arange(64), tokens.clamp(min=0)], ~allowed.any(-1))
        assert ok.all()


def test_same_seed_and_step_same_token() -> None:
    logits = torch.randn(8, 40)
    draw = lambda step: reference.sample_tokens(logits, bitmask=None, **params(8), step=step)
    assert torch.equal(draw(3), draw(3))
    assert not all(torch.equal(draw(3), draw(s)) for s in range(4, 8))


# ---------------------------------------------------------------------------------------------
# Triton (interpreted) draws the same tokens as the reference
# ---------------------------------------------------------------------------------------------
MIXED = {  # eight rows, eight configurations, in one launch
    "temperature": [0.0, 1.0, 0.7, 1.3, 1.0, 0.5, 2.0, 1.0],
    "top_k": [0, 0, 5, 0, 20, 3, 1, 200],
    "top_p": [1.0, 1.0, 1.0, 0.8, 0.9, 0.5, 1.0, 0.0],
}


@pytest.mark.usefixtures("triton_available")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_draws_the_reference_tokens(dtype: torch.dtype, device: str) -> None:
    B, V = 8, 100  # V not a multiple of 32
    logits = (torch.randn(B, V) * 2).to(dtype)
    logits[:, 7] = logits[:, 8]  # an exact tie in every row
    mask = random_mask(B, V)
    mask[5] = 0  # a row with nothing allowed -> -1
    logits, mask = logits.to(device), mask.to(device)
    for step in range(3):
        seeds = [step * 1000 + r - 4 for r in range(B)]
        kw = {
            **{k: v.to(device) for k, v in params(B, seed=seeds, **MIXED).items()},
            "bitmask": mask,
            "step": step,
        }
        want = reference.sample_tokens(logits, **kw)
        assert torch.equal(triton_ops.sample_tokens(logits, **kw), want), step
        assert want[5] == -1


@pytest.mark.usefixtures("triton_available")
def test_triton_across_tiles_without_a_mask() -> None:
    B, V = 4, 90
    logits = torch.randn(B, V) * 2
    kw = {**params(B, temperature=[0.0, 1.0, 0.8, 1.2], top_k=[0, 7, 0, 30], top_p=[1.0, 0.9, 0.6, 0.95])}
    kw.update(bitmask=None, step=11)
    # block_v=32: three tiles, the last one ragged; ties across tiles resolve to the lowest id.
    logits[0, 70] = logits[0, 10] = logits[0].max() + 1
    got = triton_ops.sample_tokens(logits, **kw, block_v=32)
    assert torch.equal(got, reference.sample_tokens(logits, **kw))
    assert got[0] == 10


@pytest.mark.usefixtures("triton_available")
def test_dispatch_forced_to_triton_on_cpu() -> None:
    logits = torch.randn(2, 33)
    kw = {**params(2), "bitmask": None, "step": 0}
    assert torch.equal(sample_tokens(logits, **kw, backend="triton"), sample_tokens(logits, **kw))
