"""End to end: one batched decode step of a tiny Llama-style decoder, kernels vs references.

Liger-style: the same weights run once with every op on the torch references and once with
every op on the Triton kernels (interpreted on the CPU); logits must agree and the sampled
tokens must be identical. Rows sit at ragged positions, heads are grouped (GQA), sizes are
ragged (F and V not powers of two).
"""

from __future__ import annotations

import pytest
import torch

from workbench.kernels import (
    apply_rotary,
    decode_attention,
    rms_norm,
    rotary_cos_sin,
    sample_tokens,
    silu_and_mul,
)

pytestmark = pytest.mark.usefixtures("triton_available")

B, D, HQ, HKV, DH, F, V, TMAX, LAYERS = 3, 64, 4, 2, 16, 96, 77, 24, 2


def make_model() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    r = lambda *shape, s=0.2: torch.randn(*shape, generator=g) * s
    w: dict[str, torch.Tensor] = {"emb": r(V, D, s=1.0), "ln_f": 1 + r(D), "lm_head": r(D, V)}
    for i in range(LAYERS):
        w |= {
            f"{i}.ln1": 1 + r(D),
            f"{i}.wq": r(D, HQ * DH),
            f"{i}.wk": r(D, HKV * DH),
            f"{i}.wv": r(D, HKV * DH),
            f"{i}.wo": r(HQ * DH, D),
            f"{i}.ln2": 1 + r(D),
            f"{i}.wg": r(D, F),
            f"{i}.wu": r(D, F),
            f"{i}.wd": r(F, D),
            f"{i}.k_cache": r(B, HKV, TMAX, DH, s=1.0),  # earlier tokens' keys and values
            f"{i}.v_cache": r(B, HKV, TMAX, DH, s=1.0),
        }
    return w


def decode_step(w: dict[str, torch.Tensor], tokens: torch.Tensor, pos: torch.Tensor, backend: str):
    """Logits [B, V] and sampled tokens [B] for one new token per row at positions ``pos``."""
    rows = torch.arange(B)
    cos, sin = rotary_cos_sin(pos[:, None], DH, 10000.0, torch.float32)  # [B, 1, DH]
    h = w["emb"][tokens]  # [B, D]
    for i in range(LAYERS):
        a = rms_norm(h, w[f"{i}.ln1"], 1e-5, backend=backend)  # [B, D]
        q = (a @ w[f"{i}.wq"]).view(B, HQ, 1, DH)  # [B, HQ, 1, DH]
        k = (a @ w[f"{i}.wk"]).view(B, HKV, 1, DH)
        v = (a @ w[f"{i}.wv"]).view(B, HKV, 1, DH)
        q = apply_rotary(q, cos, sin, backend=backend)
        k = apply_rotary(k, cos, sin, backend=backend)
        k_cache, v_cache = w[f"{i}.k_cache"].clone(), w[f"{i}.v_cache"].clone()
        k_cache[rows, :, pos] = k[:, :, 0]  # the new token's key/value go in before attending
        v_cache[rows, :, pos] = v[:, :, 0]
        o = decode_attention(q[:, :, 0], k_cache, v_cache, pos + 1, DH**-0.5, backend=backend)  # [B, HQ, DH]
        h = h + o.reshape(B, HQ * DH) @ w[f"{i}.wo"]
        m = rms_norm(h, w[f"{i}.ln2"], 1e-5, backend=backend)
        h = h + silu_and_mul(m @ w[f"{i}.wg"], m @ w[f"{i}.wu"], backend=backend) @ w[f"{i}.wd"]
    logits = rms_norm(h, w["ln_f"], 1e-5, backend=backend) @ w["lm_head"]  # [B, V]
    drawn = sample_tokens(
        logits,
        bitmask=torch.tensor([[-1, -1, 0b1111]] * B, dtype=torch.int32),  # tokens 68..76 disallowed
        temperature=torch.tensor([0.0, 1.0, 0.7]),
        top_k=torch.tensor([0, 10, 0], dtype=torch.int32),
        top_p=torch.tensor([1.0, 1.0, 0.9]),
        seed=torch.tensor([5, 6, 7]),
        step=int(pos.max()),
        backend=backend,
    )
    return logits, drawn


def test_kernels_and_references_agree_on_a_decode_step() -> None:
    w = make_model()
    tokens = torch.tensor([3, 50, 76])
    pos = torch.tensor([0, 9, TMAX - 1])  # ragged: first token, middle, last cache slot
    want_logits, want_tokens = decode_step(w, tokens, pos, "torch")
    logits, drawn = decode_step(w, tokens, pos, "triton")
    torch.testing.assert_close(logits, want_logits, atol=1e-4, rtol=1e-4)
    assert torch.equal(drawn, want_tokens)
    assert (drawn < 68).all() and drawn[0] == want_logits[0, :68].argmax()
