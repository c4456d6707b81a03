"""Decode attention over a static KV cache with grouped query heads (flash-decoding).

One new query token per sequence attends over the first ``lengths[b]`` cached positions (its
own key/value already written there). With ``G = Hq / Hkv`` query heads per KV head, query
head ``h`` reads KV head ``h // G``. Maths, per batch row ``b`` and query head ``h``::

    s[t]   = scale * <q[b, h], k[b, h // G, t]>          for t < lengths[b]
    p      = softmax(s)
    out    = sum_t p[t] * v[b, h // G, t]

everything accumulated in fp32, the result cast to ``q.dtype``. A row with ``lengths[b] == 0``
attends to nothing and returns zeros (both implementations).

The Triton kernel is flash-decoding: the positions of each row are cut into ``num_splits``
chunks sized from that row's *own* length (so short rows in a long cache do not leave programs
idle), and each program walks its chunk in tiles with an online softmax, keeping a running max
``m``, normaliser ``l`` and unnormalised ``acc``. A second kernel merges the chunks::

    M = max_s m_s,   out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s

Each program serves all ``G`` query heads of one KV head, so every cached key and value is read
once per step: the kernel is bandwidth-bound on the cache, as decode should be.
"""

from __future__ import annotations

import math

import torch

from workbench.errors import UsageError

from ._triton import cast_rne, jit, launch, next_power_of_2, tl, triton, wants_interpreter

__all__ = ["decode_attention_reference", "decode_attention_triton"]

_LOG2E = 1.0 / math.log(2.0)  # exp(x) == exp2(x * _LOG2E)


def _check(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor) -> None:
    if q.dim() != 3 or k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise UsageError(
            f"decode_attention: want q [B, Hq, Dh] and k/v caches [B, Hkv, Tmax, Dh], got "
            f"q {tuple(q.shape)}, k {tuple(k_cache.shape)}, v {tuple(v_cache.shape)}"
        )
    B, Hq, Dh = q.shape
    Bk, Hkv, _, Dk = k_cache.shape
    if Bk != B or Dk != Dh or Hq % Hkv:
        raise UsageError(
            f"decode_attention: q {tuple(q.shape)} does not fit cache {tuple(k_cache.shape)} "
            "(same B and Dh, Hq a multiple of Hkv)"
        )
    if tuple(lengths.shape) != (B,) or lengths.dtype not in (torch.int32, torch.int64):
        raise UsageError(f"decode_attention: lengths must be int32/int64 [B={B}], got {lengths.dtype}")


def decode_attention_reference(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor, scale: float
) -> torch.Tensor:
    """Masked softmax attention of ``q [B, Hq, Dh]`` over ``k/v_cache [B, Hkv, Tmax, Dh]`` in fp32."""
    _check(q, k_cache, v_cache, lengths)
    B, Hq, Dh = q.shape
    Hkv, Tmax = k_cache.shape[1], k_cache.shape[2]
    G = Hq // Hkv
    # Only the filled prefix matters; slicing keeps the fp32 copies small on a long cache.
    T = max(1, min(Tmax, int(lengths.max()))) if B else 1
    k = k_cache[:, :, :T].float()  # [B, Hkv, T, Dh]
    v = v_cache[:, :, :T].float()  # [B, Hkv, T, Dh]
    qf = q.float().view(B, Hkv, G, Dh)  # [B, Hkv, G, Dh]
    s = torch.einsum("bhgd,bhtd->bhgt", qf, k) * scale  # [B, Hkv, G, T]
    valid = torch.arange(T, device=q.device)[None, :] < lengths[:, None]  # [B, T]
    s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # [B, Hkv, G, T]; empty rows -> 0
    out = torch.einsum("bhgt,bhtd->bhgd", p, v)  # [B, Hkv, G, Dh]
    return out.reshape(B, Hq, Dh).to(q.dtype)


@jit
def split_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    len_ptr,
    out_ptr,
    m_ptr,
    l_ptr,
    acc_ptr,
    sqb,
    sqh,
    sqd,
    skb,
    skh,
    skt,
    skd,
    svb,
    svh,
    svt,
    svd,
    sob,
    soh,
    sod,
    qk_scale,
    G,
    Dh,
    Tmax,
    NUM_SPLITS: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    kvh = tl.program_id(1).to(tl.int64)
    split = tl.program_id(2)
    # A length past the cache would read out of bounds; treat it as a full cache.
    length = tl.minimum(tl.load(len_ptr + b).to(tl.int32), Tmax)
    # Chunk this row's own length, rounded up to whole tiles.
    chunk = tl.cdiv(tl.cdiv(length, NUM_SPLITS), BLOCK_T) * BLOCK_T
    start = split * chunk
    end = tl.minimum(start + chunk, length)

    g = tl.arange(0, BLOCK_G)  # [BLOCK_G]
    d = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    gm = g < G
    dm = d < Dh
    heads = kvh * G + g  # [BLOCK_G] query heads served by this KV head
    q = tl.load(
        q_ptr + b * sqb + heads[:, None] * sqh + d[None, :] * sqd, mask=gm[:, None] & dm[None, :], other=0.0
    )  # [BLOCK_G, BLOCK_D]
    if UPCAST:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    k_base = k_ptr + b * skb + kvh * skh
    v_base = v_ptr + b * svb + kvh * svh
    for t0 in range(start, end, BLOCK_T):
        t = t0 + tl.arange(0, BLOCK_T)  # [BLOCK_T]
        tm = t < end
        kv_mask = tm[:, None] & dm[None, :]
        k = tl.load(
            k_base + t[:, None] * skt + d[None, :] * skd, mask=kv_mask, other=0.0
        )  # [BLOCK_T, BLOCK_D]
        v = tl.load(
            v_base + t[:, None] * svt + d[None, :] * svd, mask=kv_mask, other=0.0
        )  # [BLOCK_T, BLOCK_D]
        if UPCAST:
            # fp32 operands: exact in the interpreter (whose bf16 dot is broken) and for fp32 caches.
            k = k.to(tl.float32)
            v = v.to(tl.float32)
            s = tl.dot(q, tl.trans(k), input_precision="ieee")  # [BLOCK_G, BLOCK_T]
        else:
            s = tl.dot(q, tl.trans(k))  # [BLOCK_G, BLOCK_T] fp32 accumulation
        # Scores in log2 units (qk_scale carries log2(e)) so exp2 replaces exp.
        s = tl.where(tm[None, :], s * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))  # [BLOCK_G]
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])  # [BLOCK_G, BLOCK_T]
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if UPCAST:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    if NUM_SPLITS == 1:
        # Single chunk: normalise and write the answer directly (empty rows give zeros).
        out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
        o_ptrs = out_ptr + b * sob + heads[:, None] * soh + d[None, :] * sod
        tl.store(o_ptrs, cast_rne(out, out_ptr.dtype.element_ty), mask=gm[:, None] & dm[None, :])
    else:
        # Partials laid out [B, Hq, NUM_SPLITS] (+ [BLOCK_D] for acc), contiguous.
        row = (b * G * tl.num_programs(1) + heads) * NUM_SPLITS + split  # [BLOCK_G]
        tl.store(m_ptr + row, m_i, mask=gm)
        tl.store(l_ptr + row, l_i, mask=gm)
        tl.store(acc_ptr + row[:, None] * BLOCK_D + d[None, :], acc, mask=gm[:, None])


@jit
def merge_kernel(
    m_ptr,
    l_ptr,
    acc_ptr,
    out_ptr,
    sob,
    soh,
    sod,
    Hq,
    Dh,
    NUM_SPLITS: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    s = tl.arange(0, NUM_SPLITS)  # [S]
    d = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    m = tl.load(m_ptr + bh * NUM_SPLITS + s)  # [S]
    l_s = tl.load(l_ptr + bh * NUM_SPLITS + s)  # [S]
    acc = tl.load(acc_ptr + (bh * NUM_SPLITS + s)[:, None] * BLOCK_D + d[None, :])  # [S, BLOCK_D]
    m_max = tl.max(m, axis=0)
    # Empty chunks carry m = -inf; guard the all-empty row so exp2 never sees -inf - -inf.
    m_ref = tl.where(m_max == float("-inf"), 0.0, m_max)
    w = tl.exp2(m - m_ref)  # [S]; 0 for empty chunks
    den = tl.sum(w * l_s, axis=0)
    num = tl.sum(w[:, None] * acc, axis=0)  # [BLOCK_D]
    out = num / tl.where(den > 0, den, 1.0)
    b = bh // Hq
    h = bh % Hq
    tl.store(out_ptr + b * sob + h * soh + d * sod, cast_rne(out, out_ptr.dtype.element_ty), mask=d < Dh)


def _num_splits(batch_heads: int, tmax: int, block_t: int, interpret: bool) -> int:
    """Enough chunks to give every SM of a big GPU a few programs, never more than tiles exist."""
    if interpret:
        return next_power_of_2(min(4, triton.cdiv(tmax, block_t)))  # exercise the merge path cheaply
    target = 264  # ~2 waves on a 132-SM H100/H200; harmless on smaller parts
    splits = max(1, min(triton.cdiv(target, batch_heads), triton.cdiv(tmax, block_t), 64))
    return next_power_of_2(splits)


def decode_attention_triton(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
    *,
    num_splits: int | None = None,
    block_t: int | None = None,
) -> torch.Tensor:
    """Triton flash-decoding with :func:`decode_attention_reference`'s semantics.

    ``num_splits`` (a power of two) and ``block_t`` override the heuristics, for tests and tuning.
    """
    _check(q, k_cache, v_cache, lengths)
    interpret = wants_interpreter(q, k_cache, v_cache, lengths)
    B, Hq, Dh = q.shape
    Hkv, Tmax = k_cache.shape[1], k_cache.shape[2]
    G = Hq // Hkv
    out = torch.empty((B, Hq, Dh), dtype=q.dtype, device=q.device)  # [B, Hq, Dh]
    if out.numel() == 0:
        return out
    block_d = max(16, next_power_of_2(Dh))
    block_g = max(16, next_power_of_2(G))  # tl.dot wants every dimension >= 16
    block_t = block_t or (16 if interpret else 64)
    splits = num_splits or _num_splits(B * Hkv, Tmax, block_t, interpret)
    if splits & (splits - 1):
        raise UsageError(f"decode_attention_triton: num_splits must be a power of two, got {splits}")
    upcast = interpret or q.dtype == torch.float32 or k_cache.dtype == torch.float32
    if splits > 1:
        part = (B, Hq, splits)
        m = torch.empty(part, dtype=torch.float32, device=q.device)  # [B, Hq, S]
        l_ = torch.empty(part, dtype=torch.float32, device=q.device)  # [B, Hq, S]
        acc = torch.empty((*part, block_d), dtype=torch.float32, device=q.device)  # [B, Hq, S, BLOCK_D]
    else:
        m = l_ = acc = out  # unused by the single-split path
    launch(
        split_kernel,
        (B, Hkv, splits),
        interpret,
        q,
        k_cache,
        v_cache,
        lengths,
        out,
        m,
        l_,
        acc,
        *q.stride(),
        *k_cache.stride(),
        *v_cache.stride(),
        *out.stride(),
        float(scale) * _LOG2E,
        G,
        Dh,
        Tmax,
        NUM_SPLITS=splits,
        BLOCK_G=block_g,
        BLOCK_T=block_t,
        BLOCK_D=block_d,
        UPCAST=upcast,
        num_warps=4,
    )
    if splits > 1:
        launch(
            merge_kernel,
            (B * Hq,),
            interpret,
            m,
            l_,
            acc,
            out,
            *out.stride(),
            Hq,
            Dh,
            NUM_SPLITS=splits,
            BLOCK_D=block_d,
            num_warps=4,
        )
    return out
