"""Fused token sampling: bitmask + temperature + top-k + top-p + seeded Gumbel-max.

Per row ``b`` of ``logits [B, V]``, in this order (Hugging Face's warper order)::

    allowed[t]  = bitmask bit t is set and logits[t] > -inf          (bitmask None: all finite)
    greedy      : temperature <= 0  ->  argmax_t over allowed of logits[t], ties -> lowest id
    s[t]        = fp32(logits[t]) / temperature                       (IEEE division)
    top-k  (0 < k < #allowed): keep s[t] >= the k-th largest allowed s (ties at the edge kept)
    top-p  (top_p < 1):        with w[t] = exp(s[t] - max s) over the top-k survivors,
                               keep t iff  sum{w[u] : s[u] > s[t]} < top_p * sum(w)
                               (the mass strictly above t is below top_p; the best token and
                               its ties always survive, even for top_p <= 0)
    token       = argmax_t over survivors of  s[t] + gumbel(seed, step, t),  ties -> lowest id

If no token is allowed the row returns **-1** (callers treat it as "the constraint left no
way forward"). NaN logits are not supported.

The noise is a counter-based hash, not ``torch.Generator``/``tl.rand``, so the torch reference
and the Triton kernel draw the *same* numbers from ``(seed, step, token id)``::

    mix(x)   = lowbias32: x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16
    key      = mix(mix(mix(lo32(seed) ^ 0x9e3779b9) ^ hi32(seed)) ^ lo32(step))
    r        = mix(mix(t ^ key) ^ key)
    u        = ((r >> 9) + 0.5) / 2^23                  in (0, 1), exact in fp32
    gumbel   = -log(-log(u))

Both thresholds are found without sorting: an fp32 maps to an int32 ``key`` in the same order,
and the kernel binary-searches the key range (one pass over the row per step, at most 32), so
the top-k cut is exact in integers. The two implementations then agree token for token except
in near-ties within float rounding of ``exp``/``log`` (two perturbed scores, or a top-p mass and
its bound); the tests check exact agreement over many seeds and configurations.
"""

from __future__ import annotations

import torch

from workbench.errors import UsageError

from ._triton import jit, launch, next_power_of_2, tl, wants_interpreter
from .bitmask import allowed_tokens, check_bitmask

__all__ = ["gumbel_noise", "sample_tokens_reference", "sample_tokens_triton", "uniform_noise"]

_M32 = 0xFFFFFFFF
_C1, _C2, _GOLDEN = 0x7FEB352D, 0x846CA68B, 0x9E3779B9
_INT32_MIN = -(2**31)


# ---------------------------------------------------------------------------------------------
# The hash in torch. int64 tensors hold uint32 values; products are split into 16-bit halves so
# nothing overflows int64 (torch has no wrapping uint32 multiply on every device).
# ---------------------------------------------------------------------------------------------
def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, _C1)
    x = x ^ (x >> 15)
    x = _mul32(x, _C2)
    return x ^ (x >> 16)


def _row_key(seed: torch.Tensor, step: int) -> torch.Tensor:
    """Per-row hash key ``[B]`` (int64 holding uint32) from int64 seeds and the step counter."""
    lo = seed & _M32
    hi = (seed >> 32) & _M32
    return _mix32(_mix32(_mix32(lo ^ _GOLDEN) ^ hi) ^ (step & _M32))


def uniform_noise(seed: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """The kernel's uniforms ``u [B, V]`` in (0, 1) for ``seed int64 [B]`` at ``step``."""
    key = _row_key(seed.to(torch.int64), step)[:, None]  # [B, 1]
    t = torch.arange(vocab_size, device=seed.device, dtype=torch.int64)[None, :]  # [1, V]
    r = _mix32(_mix32(t ^ key) ^ key)  # [B, V]
    return ((r >> 9).float() + 0.5) * (1.0 / 2**23)


def gumbel_noise(seed: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Standard Gumbel noise ``[B, V]`` (fp32), identical to what the Triton kernel adds."""
    return -torch.log(-torch.log(uniform_noise(seed, step, vocab_size)))


def _float_key(s: torch.Tensor) -> torch.Tensor:
    """Order-preserving int32 image of fp32 ``s`` (-0.0 must already be +0.0)."""
    bits = s.view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _check(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    seed: torch.Tensor,
) -> None:
    if logits.dim() != 2:
        raise UsageError(f"sample_tokens: logits must be [B, V], got {tuple(logits.shape)}")
    B = logits.shape[0]
    if bitmask is not None:
        check_bitmask(logits, bitmask)
    for name, t in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p), ("seed", seed)):
        if tuple(t.shape) != (B,):
            raise UsageError(f"sample_tokens: {name} must have shape [B={B}], got {tuple(t.shape)}")


def sample_tokens_reference(
    logits: torch.Tensor,
    *,
    bitmask: torch.Tensor | None,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    seed: torch.Tensor,
    step: int,
) -> torch.Tensor:
    """Torch implementation of the module docstring's sampling rule; returns int64 ``[B]``."""
    _check(logits, bitmask, temperature, top_k, top_p, seed)
    V = logits.shape[1]
    x = logits.float()  # [B, V]
    allowed = x > float("-inf")  # [B, V]
    if bitmask is not None:
        allowed &= allowed_tokens(bitmask, V)
    n_allowed = allowed.sum(-1)  # [B]
    x = x.masked_fill(~allowed, float("-inf"))
    greedy_tok = x.argmax(-1)  # [B]; torch returns the first maximum

    temp = temperature.float()
    greedy = temp <= 0  # [B]
    s = x / torch.where(greedy, 1.0, temp)[:, None]  # [B, V]
    s = torch.where(s == 0, 0.0, s)  # fold -0.0 into +0.0 so keys order like floats
    keys = _float_key(s).masked_fill(~allowed, _INT32_MIN)  # [B, V] int32

    # top-k: the k-th largest allowed key, exactly what the kernel's integer search finds.
    sorted_keys = keys.sort(-1, descending=True).values  # [B, V]
    k = top_k.to(torch.int64)
    k_on = (k > 0) & (k < n_allowed)
    kth = sorted_keys.gather(1, (k.clamp(1, V) - 1)[:, None])[:, 0]  # [B]
    thr = torch.where(k_on, kth, torch.full_like(kth, _INT32_MIN))  # [B]
    kept = allowed & (keys >= thr[:, None])  # [B, V]

    # top-p over the survivors: mass strictly above each candidate, in descending key order.
    p_on = top_p.float() < 1.0
    if bool(p_on.any()):
        s_max = s.masked_fill(~kept, float("-inf")).amax(-1, keepdim=True)  # [B, 1]
        w = torch.exp(s - s_max).masked_fill(~kept, 0.0)  # [B, V]
        z = w.sum(-1)  # [B]
        order_keys, order = keys.masked_fill(~kept, _INT32_MIN).sort(-1, descending=True)  # [B, V]
        sw = w.gather(1, order)  # [B, V]
        # Exclusive prefix sum: the mass of every candidate ranked strictly before this one.
        above = torch.cat([torch.zeros_like(sw[:, :1]), torch.cumsum(sw, -1)[:, :-1]], -1)  # [B, V]
        in_nucleus = kept.gather(1, order) & (above < (top_p.float() * z)[:, None])  # [B, V]
        last = (in_nucleus.sum(-1) - 1).clamp(min=0)  # [B]; the best token always survives
        thr_p = order_keys.gather(1, last[:, None])[:, 0]  # [B]
        thr = torch.where(p_on, torch.maximum(thr, thr_p), thr)
        kept = allowed & (keys >= thr[:, None])

    score = (s + gumbel_noise(seed, step, V)).masked_fill(~kept, float("-inf"))  # [B, V]
    token = torch.where(greedy, greedy_tok, score.argmax(-1))  # [B]
    return torch.where(n_allowed > 0, token, -1)


@jit
def mix32(x):
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


@jit
def load_scores(
    logits_ptr, mask_ptr, row, cols, V, W, l_row_stride, m_row_stride, temp, HAS_MASK: tl.constexpr
):
    """Scaled scores of one tile (-inf where disallowed), their keys and the allowed flags."""
    inb = cols < V
    x = tl.load(logits_ptr + row * l_row_stride + cols, mask=inb, other=float("-inf")).to(tl.float32)
    allowed = inb & (x > float("-inf"))
    if HAS_MASK:
        word_idx = cols // 32
        words = tl.load(mask_ptr + row * m_row_stride + word_idx, mask=inb & (word_idx < W), other=0)
        allowed = allowed & (((words >> (cols % 32)) & 1) != 0)
    s = tl.div_rn(x, temp)
    s = tl.where(s == 0.0, 0.0, s)  # -0.0 -> +0.0
    s = tl.where(allowed, s, float("-inf"))
    bits = s.to(tl.int32, bitcast=True)
    keys = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return s, keys, allowed


# step changes every call: specialising on it (== 1, % 16) would only add recompiles.
@jit(do_not_specialize=["step"])
def sample_kernel(
    logits_ptr,
    mask_ptr,
    temp_ptr,
    topk_ptr,
    topp_ptr,
    seed_ptr,
    out_ptr,
    V,
    W,
    l_row_stride,
    m_row_stride,
    step,
    HAS_MASK: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    temp = tl.load(temp_ptr + row).to(tl.float32)
    greedy = temp <= 0.0
    temp = tl.where(greedy, 1.0, temp)
    top_k = tl.load(topk_ptr + row).to(tl.int32)
    top_p = tl.load(topp_ptr + row).to(tl.float32)

    # Pass 1: max (and its first index), number allowed, key range.
    best = tl.full([], float("-inf"), tl.float32)
    best_idx = tl.full([], -1, tl.int32)
    n_allowed = tl.full([], 0, tl.int32)
    lo_key = tl.full([], 2147483647, tl.int32)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)  # [BLOCK_V]
        s, keys, allowed = load_scores(
            logits_ptr, mask_ptr, row, cols, V, W, l_row_stride, m_row_stride, temp, HAS_MASK
        )
        t_max, t_arg = tl.max(s, 0, return_indices=True)
        better = t_max > best  # strict: an earlier tile keeps ties
        best_idx = tl.where(better, v0 + t_arg, best_idx)
        best = tl.maximum(best, t_max)
        n_allowed += tl.sum(allowed.to(tl.int32), 0)
        lo_key = tl.minimum(lo_key, tl.min(tl.where(allowed, keys, 2147483647), 0))
    bits = best.to(tl.int32, bitcast=True)
    hi_key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)

    token = best_idx
    if (~greedy) & (n_allowed > 0):
        # top-k: largest key K with #{allowed, key >= K} >= k. int64 so hi - lo cannot overflow.
        lo = lo_key.to(tl.int64)
        hi = hi_key.to(tl.int64)
        if (top_k > 0) & (top_k < n_allowed):
            while lo < hi:
                mid = lo + (hi - lo + 1) // 2
                mid32 = mid.to(tl.int32)  # between two int32 keys, so it fits; int32 compares are cheaper
                count = tl.full([], 0, tl.int32)
                for v0 in range(0, V, BLOCK_V):
                    cols = v0 + tl.arange(0, BLOCK_V)
                    s, keys, allowed = load_scores(
                        logits_ptr, mask_ptr, row, cols, V, W, l_row_stride, m_row_stride, temp, HAS_MASK
                    )
                    count += tl.sum((allowed & (keys >= mid32)).to(tl.int32), 0)
                ok = count >= top_k
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid - 1)
        # top-p: smallest K >= the top-k cut with mass(key > K) < top_p * Z.
        if top_p < 1.0:
            thr = lo.to(tl.int32)
            z = tl.full([], 0.0, tl.float32)
            for v0 in range(0, V, BLOCK_V):
                cols = v0 + tl.arange(0, BLOCK_V)
                s, keys, allowed = load_scores(
                    logits_ptr, mask_ptr, row, cols, V, W, l_row_stride, m_row_stride, temp, HAS_MASK
                )
                w = tl.where(allowed & (keys >= thr), tl.exp(s - best), 0.0)
                z += tl.sum(w, 0)
            bound = top_p * z
            hi = hi_key.to(tl.int64)
            while lo < hi:
                mid = lo + (hi - lo) // 2
                mid32 = mid.to(tl.int32)
                mass = tl.full([], 0.0, tl.float32)
                for v0 in range(0, V, BLOCK_V):
                    cols = v0 + tl.arange(0, BLOCK_V)
                    s, keys, allowed = load_scores(
                        logits_ptr, mask_ptr, row, cols, V, W, l_row_stride, m_row_stride, temp, HAS_MASK
                    )
                    w = tl.where(allowed & (keys > mid32), tl.exp(s - best), 0.0)
                    mass += tl.sum(w, 0)
                ok = mass < bound
                hi = tl.where(ok, mid, hi)
                lo = tl.where(ok, lo, mid + 1)
        # Gumbel-max over the survivors with the counter-based noise.
        seed = tl.load(seed_ptr + row)
        key = mix32(
            mix32(mix32(seed.to(tl.uint32) ^ 0x9E3779B9) ^ (seed >> 32).to(tl.uint32)) ^ step.to(tl.uint32)
        )
        cut = lo.to(tl.int32)
        best_score = tl.full([], float("-inf"), tl.float32)
        for v0 in range(0, V, BLOCK_V):
            cols = v0 + tl.arange(0, BLOCK_V)
            s, keys, allowed = load_scores(
                logits_ptr, mask_ptr, row, cols, V, W, l_row_stride, m_row_stride, temp, HAS_MASK
            )
            r = mix32(mix32(cols.to(tl.uint32) ^ key) ^ key)
            u = ((r >> 9).to(tl.float32) + 0.5) * (1.0 / 8388608.0)
            g = -tl.log(-tl.log(u))
            score = tl.where(allowed & (keys >= cut), s + g, float("-inf"))
            t_max, t_arg = tl.max(score, 0, return_indices=True)
            better = t_max > best_score
            token = tl.where(better, v0 + t_arg, token)
            best_score = tl.maximum(best_score, t_max)
    tl.store(out_ptr + row, token.to(tl.int64))


def sample_tokens_triton(
    logits: torch.Tensor,
    *,
    bitmask: torch.Tensor | None,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    seed: torch.Tensor,
    step: int,
    block_v: int | None = None,
) -> torch.Tensor:
    """Triton :func:`sample_tokens_reference`: one program per row; ``block_v`` overrides the tile."""
    _check(logits, bitmask, temperature, top_k, top_p, seed)
    extra = () if bitmask is None else (bitmask,)
    interpret = wants_interpreter(logits, temperature, top_k, top_p, seed, *extra)
    B, V = logits.shape
    out = torch.empty(B, dtype=torch.int64, device=logits.device)  # [B]
    if B == 0:
        return out
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    if bitmask is not None and bitmask.stride(-1) != 1:
        bitmask = bitmask.contiguous()
    block_v = block_v or min(4096, next_power_of_2(V))
    mask_arg = bitmask if bitmask is not None else logits  # never read when HAS_MASK is False
    launch(
        sample_kernel,
        (B,),
        interpret,
        logits,
        mask_arg,
        temperature.float().contiguous(),
        top_k.to(torch.int32).contiguous(),
        top_p.float().contiguous(),
        seed.to(torch.int64).contiguous(),
        out,
        V,
        0 if bitmask is None else bitmask.shape[1],
        logits.stride(0),
        0 if bitmask is None else bitmask.stride(0),
        int(step) & 0xFFFFFFFF,
        HAS_MASK=bitmask is not None,
        BLOCK_V=block_v,
        num_warps=8 if block_v >= 2048 else 4,
    )
    return out
