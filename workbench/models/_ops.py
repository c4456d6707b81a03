"""The hot-path ops the runtime calls, taken from ``workbench.kernels``.

TEMPORARY: until ``workbench.kernels`` lands, plain torch stand-ins with the same signatures
live below; they go away once the kernels package exports these names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # pragma: no cover - depends on which helper has committed what
    from workbench.kernels import (
        apply_rotary,
        decode_attention,
        rms_norm,
        rotary_cos_sin,
        sample_tokens,
        silu_and_mul,
    )
except (ImportError, SyntaxError):  # TEMPORARY: kernels are being written in a shared tree
    import math

    def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """x / rms(x) * weight, computed in fp32."""
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight

    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B,H,T,Dh] rotated by cos/sin [B,T,Dh] (rotate_half convention)."""
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [B,1,T,Dh]
        return (x * cos + _rotate_half(x) * sin).to(x.dtype)

    def _inv_freq(head_dim: int, base: float, scaling: dict | None) -> torch.Tensor:
        inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        if not scaling:
            return inv
        kind = scaling.get("rope_type", "default")
        if kind == "linear":
            return inv / float(scaling["factor"])
        if kind == "llama3":
            factor = float(scaling["factor"])
            low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
            old = float(scaling["original_max_position_embeddings"])
            wavelen = 2 * math.pi / inv
            smooth = (old / wavelen - low) / (high - low)
            mid = (1 - smooth) * inv / factor + smooth * inv
            out = torch.where(wavelen > old / low, inv / factor, inv)
            return torch.where((wavelen <= old / low) & (wavelen >= old / high), mid, out)
        return inv

    def rotary_cos_sin(
        positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype, scaling: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin [B,T,Dh] for integer positions [B,T]."""
        inv = _inv_freq(head_dim, base, scaling).float().to(positions.device)  # [Dh/2]
        angles = positions.float().unsqueeze(-1) * inv  # [B,T,Dh/2]
        emb = torch.cat((angles, angles), dim=-1)  # [B,T,Dh]
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def silu_and_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """silu(gate) * up."""
        return F.silu(gate) * up

    def decode_attention(
        q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """One query per sequence q [B,Hq,Dh] over the first lengths[b] cache slots -> [B,Hq,Dh]."""
        b, hq, dh = q.shape
        hkv, tmax = k_cache.shape[1], k_cache.shape[2]
        qg = q.view(b, hkv, hq // hkv, dh)  # [B,Hkv,G,Dh]
        scores = torch.einsum("bhgd,bhtd->bhgt", qg.float(), k_cache.float()) * scale  # [B,Hkv,G,T]
        valid = torch.arange(tmax, device=q.device)[None, :] < lengths[:, None]  # [B,T]
        scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        out = torch.einsum("bhgt,bhtd->bhgd", scores.softmax(-1), v_cache.float())  # [B,Hkv,G,Dh]
        return out.reshape(b, hq, dh).to(q.dtype)

    def sample_tokens(
        logits: torch.Tensor,
        *,
        bitmask: torch.Tensor | None,
        temperature: torch.Tensor,
        top_k: torch.Tensor,
        top_p: torch.Tensor,
        seed: torch.Tensor,
        step: int,
    ) -> torch.Tensor:
        """One token per row of logits [B,V]; temperature 0 means greedy."""
        logits = logits.float()
        bsz, vocab = logits.shape
        if bitmask is not None:
            bits = (bitmask.unsqueeze(-1) >> torch.arange(32, device=logits.device, dtype=torch.int32)) & 1
            allowed = bits.reshape(bsz, -1)[:, :vocab].bool()
            logits = logits.masked_fill(~allowed, float("-inf"))
        out = torch.empty(bsz, dtype=torch.int64, device=logits.device)
        for i in range(bsz):
            row, t = logits[i], float(temperature[i])
            if t <= 0:
                out[i] = row.argmax()
                continue
            row = row / t
            k = int(top_k[i])
            if 0 < k < vocab:
                row = row.masked_fill(row < row.topk(k).values[-1], float("-inf"))
            p = float(top_p[i])
            if p < 1.0:
                sorted_row, order = row.sort(descending=True)
                probs = sorted_row.softmax(-1)
                drop = probs.cumsum(-1) - probs > p
                row = row.scatter(0, order, sorted_row.masked_fill(drop, float("-inf")))
            gen = torch.Generator(device=logits.device).manual_seed(int(seed[i]) * 1_000_003 + step)
            probs = row.softmax(-1)
            out[i] = torch.multinomial(probs, 1, generator=gen)[0]
        return out


__all__ = ["apply_rotary", "decode_attention", "rms_norm", "rotary_cos_sin", "sample_tokens", "silu_and_mul"]
