"""Triton kernels beside their torch references (installed as ``workbench.kernels``).

The hot paths of local Llama-family inference, each a public function that dispatches:

    rms_norm          Llama RMSNorm                                  kernels/rms_norm.py
    apply_rotary      RoPE, HF rotate_half convention                kernels/rotary.py
    rotary_cos_sin    cos/sin tables incl. llama3 scaling (torch)    kernels/rotary.py
    silu_and_mul      silu(gate) * up                                kernels/activation.py
    decode_attention  one query token over a KV cache, GQA           kernels/decode_attention.py
    apply_token_bitmask  packed int32 mask -> -inf logits            kernels/bitmask.py
    sample_tokens     mask + temperature + top-k/p + seeded sample   kernels/sampling.py

Dispatch (``backend="auto"``, the default): the Triton kernel when the tensors are on a CUDA
device and Triton is installed, the torch reference otherwise (CPU, or no Triton). The
environment variable ``WORKBENCH_KERNELS=torch`` turns "auto" into the references everywhere
(to rule out a suspected kernel bug); ``WORKBENCH_KERNELS=triton`` into Triton everywhere (on
CPU tensors: the interpreter, to run a whole tiny model through the kernels). An explicit
``backend="torch"`` / ``"triton"`` on a call wins over the variable.

The references are also importable as ``workbench.kernels.reference.<name>`` and the
launchers as ``workbench.kernels.triton_ops.<name>``. This package imports nothing from
``workbench`` except ``workbench.errors``, and Triton only if it is installed.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch

from workbench.errors import UsageError

from . import reference, triton_ops
from ._triton import HAS_TRITON, require_triton
from .rotary import rotary_cos_sin

__all__ = [
    "HAS_TRITON",
    "Backend",
    "apply_rotary",
    "apply_token_bitmask",
    "decode_attention",
    "rms_norm",
    "rotary_cos_sin",
    "sample_tokens",
    "silu_and_mul",
]

Backend = Literal["auto", "torch", "triton"]


def _use_triton(x: torch.Tensor, backend: Backend) -> bool:
    """Decide the implementation for one call (see the module docstring)."""
    if backend == "auto":
        # Read per call (a dict lookup) so tests and notebooks can flip it without re-importing.
        env = os.environ.get("WORKBENCH_KERNELS", "auto")
        if env not in ("torch", "triton"):
            return HAS_TRITON and x.is_cuda
        backend = "torch" if env == "torch" else "triton"
    if backend == "torch":
        return False
    if backend == "triton":
        require_triton()
        return True
    raise UsageError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *, backend: Backend = "auto") -> torch.Tensor:
    """Llama RMSNorm of ``x [..., D]`` with ``weight [D]``: fp32 maths, HF's cast order.

    ``weight * (x * rsqrt(mean(x^2, -1) + eps)).to(x.dtype)``; see :mod:`workbench.kernels.rms_norm`.
    """
    impl = triton_ops.rms_norm if _use_triton(x, backend) else reference.rms_norm
    return impl(x, weight, eps)


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, backend: Backend = "auto"
) -> torch.Tensor:
    """RoPE on ``x [B, H, T, Dh]`` with ``cos, sin [B, T, Dh]``: ``x*cos + rotate_half(x)*sin``.

    ``cos``/``sin`` come from :func:`rotary_cos_sin` (or HF's ``LlamaRotaryEmbedding``).
    """
    impl = triton_ops.apply_rotary if _use_triton(x, backend) else reference.apply_rotary
    return impl(x, cos, sin)


def silu_and_mul(gate: torch.Tensor, up: torch.Tensor, *, backend: Backend = "auto") -> torch.Tensor:
    """``silu(gate) * up`` for ``gate, up [..., F]`` of one shape and dtype."""
    impl = triton_ops.silu_and_mul if _use_triton(gate, backend) else reference.silu_and_mul
    return impl(gate, up)


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Attention of one new token per row, ``q [B, Hq, Dh]``, over the KV cache.

    ``k_cache, v_cache [B, Hkv, Tmax, Dh]`` hold the new token's key/value already; row ``b``
    attends to positions ``< lengths[b]`` (int32/int64 ``[B]``); query head ``h`` uses KV head
    ``h // (Hq // Hkv)``; fp32 softmax; a row of length 0 gives zeros. Returns ``[B, Hq, Dh]``.
    """
    impl = triton_ops.decode_attention if _use_triton(q, backend) else reference.decode_attention
    return impl(q, k_cache, v_cache, lengths, scale)


def apply_token_bitmask(
    logits: torch.Tensor, bitmask: torch.Tensor, *, backend: Backend = "auto"
) -> torch.Tensor:
    """``logits [B, V]`` with tokens not allowed by ``bitmask int32 [B, ceil(V/32)]`` set to -inf.

    Token ``t`` is allowed when bit ``t % 32`` of word ``t // 32`` is set; tokens beyond the
    mask's words are disallowed. Returns a new tensor.
    """
    impl = triton_ops.apply_token_bitmask if _use_triton(logits, backend) else reference.apply_token_bitmask
    return impl(logits, bitmask)


def sample_tokens(
    logits: torch.Tensor,
    *,
    bitmask: torch.Tensor | None,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    seed: torch.Tensor,
    step: int,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Pick one token per row of ``logits [B, V]``; returns int64 ``[B]``.

    Bitmask, then ``temperature [B]`` (<= 0: greedy argmax, ties to the lowest id), ``top_k [B]``
    (0 = off), ``top_p [B]`` (1.0 = off), then a Gumbel-max draw whose noise is a hash of
    ``(seed[b], step, token)``: the same inputs give the same token on CPU and GPU. A row whose
    mask allows no token returns -1. Full rules: :mod:`workbench.kernels.sampling`.
    """
    impl: Any = triton_ops.sample_tokens if _use_triton(logits, backend) else reference.sample_tokens
    return impl(
        logits, bitmask=bitmask, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, step=step
    )
