"""The Llama-family decoder in one readable file: Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3, SmolLM2.

    tokens -> embed -> N x [ x + attn(rms_norm(x)) ; x + mlp(rms_norm(x)) ] -> rms_norm -> lm_head

Attention uses grouped query heads (``num_kv_heads`` <= ``num_heads``) and rotary positions
(HF ``rotate_half`` layout). Qwen2 adds a bias to the q/k/v projections, Qwen3 an RMSNorm on
every query and key head before rotary; SmolLM2 ties ``lm_head`` to the embedding.

Two entry points, each running the whole stack once:

- ``prefill(model, tokens[B,T], lengths[B])`` - the prompts, right-padded into one [B,T]
  block. Causal attention already keeps every real token from seeing the padding that
  follows it, so no extra mask is needed; padding rows write junk K/V into cache slots past
  ``lengths[b]``, which decode overwrites before anything reads them.
- ``decode_one_token(model, tokens[B], positions[B])`` - one new token per sequence, written
  into the static KV cache at ``positions[b]`` (sequences of a batch sit at different
  positions); attention reads slots ``[0, positions[b]]``.

Projections are fused at load time (q/k/v into one matrix, gate/up into another) so a layer
is four matmuls: fewer kernel launches, which is what a small model's decode time is made of.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from workbench.kernels import decode_attention
from workbench.models.config import ModelConfig, ModelLoadError
from workbench.models.ops import apply_rotary, rms_norm, rotary_cos_sin, silu_and_mul

__all__ = [
    "Transformer",
    "decode_one_token",
    "expected_weight_shapes",
    "from_checkpoint",
    "fuse_checkpoint",
    "prefill",
]


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` without nn.Module's call machinery (hooks we never use; ~2 us a call)."""
    return F.linear(x, layer.weight, layer.bias)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dimension."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    """Grouped-query self-attention over a static per-layer KV cache."""

    k_cache: torch.Tensor  # buffers, typed here: nn.Module's __getattr__ says Tensor | Module
    v_cache: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        self.q_size, self.kv_size = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        self.scale = self.head_dim**-0.5
        self.qkv_proj = nn.Linear(config.hidden_size, self.q_size + 2 * self.kv_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(self.q_size, config.hidden_size, bias=config.o_bias)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps) if config.qk_norm else None
        # [Bmax, Hkv, Tmax, Dh]; (re)allocated by Transformer.setup_cache, never saved
        self.register_buffer("k_cache", torch.empty(0), persistent=False)
        self.register_buffer("v_cache", torch.empty(0), persistent=False)

    def _qkv(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bsz, seq, _ = x.shape
        heads = linear(self.qkv_proj, x).view(bsz, seq, -1, self.head_dim).transpose(1, 2)  # [B,Hq+2Hkv,T,Dh]
        qk, v = heads.split_with_sizes(
            [self.n_heads + self.n_kv, self.n_kv], dim=1
        )  # [B,Hq+Hkv,T,Dh], [B,Hkv,T,Dh]
        # Qwen3: RMSNorm per query head and per key head, before rotary
        if self.q_norm is not None and self.k_norm is not None:
            q, k = qk.split_with_sizes([self.n_heads, self.n_kv], dim=1)
            qk = torch.cat([self.q_norm.forward(q), self.k_norm.forward(k)], dim=1)
        qk = apply_rotary(qk, cos, sin)  # queries and keys rotate in one call, [B,Hq+Hkv,T,Dh]
        q, k = qk.split_with_sizes([self.n_heads, self.n_kv], dim=1)  # [B,Hq,T,Dh], [B,Hkv,T,Dh]
        return q, k, v

    def prefill(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, first_row: int = 0
    ) -> torch.Tensor:
        """x [B,T,D] -> [B,T,D]; writes K/V of positions [0, T) into cache rows first_row.. +B."""
        bsz, seq, _ = x.shape
        q, k, v = self._qkv(x, cos, sin)
        self.k_cache[first_row : first_row + bsz, :, :seq] = k
        self.v_cache[first_row : first_row + bsz, :, :seq] = v
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=self.scale, enable_gqa=self.n_kv != self.n_heads
        )  # [B,Hq,T,Dh]
        return linear(self.o_proj, out.transpose(1, 2).reshape(bsz, seq, self.q_size))

    def decode(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        positions: torch.Tensor,
        cpu_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x [B,1,D] at positions [B] -> [B,1,D]; writes K/V at ``positions`` first.

        ``cpu_mask`` [B,1,1,T] (True = a filled slot) is given on CPU only: there one fused SDPA
        call over the filled prefix is ~20x faster than the kernels' fp32 reference of
        decode_attention at small sizes; on CUDA the Triton kernel runs and needs no mask.
        """
        bsz = x.shape[0]
        q, k, v = self._qkv(x, cos, sin)  # q [B,Hq,1,Dh], k/v [B,Hkv,1,Dh]
        k_cache, v_cache = self.k_cache[:bsz], self.v_cache[:bsz]  # [B,Hkv,Tmax,Dh]
        rows = torch.arange(bsz, device=x.device)
        k_cache[rows, :, positions] = k[:, :, 0]  # one slot per sequence, [B,Hkv,Dh]
        v_cache[rows, :, positions] = v[:, :, 0]
        if cpu_mask is None:
            out = decode_attention(q[:, :, 0], k_cache, v_cache, positions + 1, self.scale)  # [B,Hq,Dh]
        else:
            filled = cpu_mask.shape[-1]
            out = F.scaled_dot_product_attention(
                q,
                k_cache[:, :, :filled],
                v_cache[:, :, :filled],
                attn_mask=cpu_mask,
                scale=self.scale,
                enable_gqa=self.n_kv != self.n_heads,
            )  # [B,Hq,1,Dh]
        return linear(self.o_proj, out.reshape(bsz, 1, self.q_size))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), gate and up fused into one matmul."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden = config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * self.hidden, bias=config.mlp_bias)
        self.down_proj = nn.Linear(self.hidden, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = linear(self.gate_up_proj, x).chunk(2, dim=-1)  # 2 x [B,T,I]
        return linear(self.down_proj, silu_and_mul(gate, up))


class Block(nn.Module):
    """One pre-norm decoder layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        positions: torch.Tensor | None,
        cpu_mask: torch.Tensor | None = None,
        first_row: int = 0,
    ) -> torch.Tensor:
        """x [B,T,D] -> [B,T,D]; ``positions`` None means prefill, else decode at those positions."""
        h = self.input_layernorm.forward(x)
        if positions is None:
            x = x + self.self_attn.prefill(h, cos, sin, first_row)
        else:
            x = x + self.self_attn.decode(h, cos, sin, positions, cpu_mask)
        return x + self.mlp.forward(self.post_attention_layernorm.forward(x))


class Transformer(nn.Module):
    """The decoder stack plus embedding and (possibly tied) output head.

    Its parameters are placeholders, never meant to be used as they are: ``from_checkpoint``
    builds it on the meta device (no memory, no initialisation) and adopts loaded tensors.
    """

    rope_cos: torch.Tensor  # buffers, typed here: nn.Module's __getattr__ says Tensor | Module
    rope_sin: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # An explicit weight skips nn.Embedding's normal_ init: on the meta device that init
        # goes through torch._refs, whose first use imports torch._dynamo (~2 s on a small CPU).
        shape = (config.vocab_size, config.hidden_size)
        self.embed_tokens = nn.Embedding(*shape, _weight=torch.empty(shape))
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.cache_batch = self.cache_len = 0
        # rotary tables [Tmax, Dh] for every cache slot, built with the cache: one lookup a step
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)

    def setup_cache(self, batch: int, length: int) -> None:
        """Make sure the static KV cache holds at least ``batch`` sequences of ``length`` slots."""
        if batch <= self.cache_batch and length <= self.cache_len:
            return
        batch, length = max(batch, self.cache_batch), max(length, self.cache_len)
        weight = self.embed_tokens.weight
        c = self.config
        shape = (batch, c.num_kv_heads, length, c.head_dim)  # [Bmax,Hkv,Tmax,Dh]
        # ordinary tensors even when called under inference_mode, so later writes are allowed anywhere
        with torch.inference_mode(False):
            for layer in cast(Iterable[Block], self.layers):  # nn.ModuleList does not say what it holds
                layer.self_attn.k_cache = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
                layer.self_attn.v_cache = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
            slots = torch.arange(length, device=weight.device)[None]  # [1,Tmax]
            cos, sin = rotary_cos_sin(slots, c.head_dim, c.rope_theta, weight.dtype, c.rope_scaling)
            self.rope_cos, self.rope_sin = cos[0], sin[0]  # [Tmax,Dh] each
        self.cache_batch, self.cache_len = batch, length

    def hidden_states(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        whole_cache: bool = False,
        first_row: int = 0,
    ) -> torch.Tensor:
        """tokens [B,T] -> final-normed hidden states [B,T,D].

        ``positions`` None: prefill of a block starting at position 0. Otherwise ``tokens`` is
        [B,1] and ``positions`` [B] the slot each sequence's token goes to. ``whole_cache``: CPU
        decode attends over every cache slot (masked) rather than the filled prefix, so shapes
        never change (what torch.compile wants). ``first_row``: prefill writes cache rows from
        there (a sequence joining a running batch).
        """
        bsz, seq = tokens.shape
        cpu_mask = None
        if positions is None:
            pos = torch.arange(seq, device=tokens.device).expand(bsz, seq)  # [B,T]
        else:
            pos = positions[:, None]  # [B,1]
            if tokens.device.type == "cpu":
                lengths = positions + 1  # [B]
                filled = self.cache_len if whole_cache else int(lengths.max())
                slots = torch.arange(filled)  # [T]
                cpu_mask = (slots[None, :] < lengths[:, None])[:, None, None, :]  # [B,1,1,T]
        cos, sin = F.embedding(pos, self.rope_cos), F.embedding(pos, self.rope_sin)  # [B,T,Dh] each
        x = F.embedding(tokens, self.embed_tokens.weight)  # [B,T,D]
        for layer in self.layers:
            x = layer.forward(x, cos, sin, positions, cpu_mask, first_row)  # .forward: no hooks to run
        return self.norm.forward(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B,T,V] for every position of a right-padded block (testing and scoring)."""
        self.setup_cache(tokens.shape[0], tokens.shape[1])
        return self.lm_head(self.hidden_states(tokens))


def prefill(
    model: Transformer, tokens: torch.Tensor, lengths: torch.Tensor, first_row: int = 0
) -> torch.Tensor:
    """Run right-padded prompts tokens [B,T] (real lengths [B]); logits [B,V] of each last real token.

    Their K/V go to cache rows ``first_row`` .. ``first_row + B``.
    """
    hidden = model.hidden_states(tokens, first_row=first_row)  # [B,T,D]
    last = hidden[torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]  # [B,D]
    return linear(model.lm_head, last)  # [B,V]


def decode_one_token(
    model: Transformer, tokens: torch.Tensor, positions: torch.Tensor, whole_cache: bool = False
) -> torch.Tensor:
    """Feed tokens [B] at positions [B]; logits [B,V] for the token after each."""
    hidden = model.hidden_states(tokens[:, None], positions, whole_cache)  # [B,1,D]
    return linear(model.lm_head, hidden[:, 0])  # [B,V]


def expected_weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Checkpoint tensor names (Hugging Face layout) and shapes this config needs."""
    c = config
    q, kv, d, i = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.hidden_size, c.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c.vocab_size, d)}
    shapes["model.norm.weight"] = (d,)
    if not c.tie_word_embeddings:
        shapes["lm_head.weight"] = (c.vocab_size, d)
    for n in range(c.num_layers):
        p = f"model.layers.{n}."
        shapes |= {
            p + "input_layernorm.weight": (d,),
            p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (q, d),
            p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d),
            p + "self_attn.o_proj.weight": (d, q),
            p + "mlp.gate_proj.weight": (i, d),
            p + "mlp.up_proj.weight": (i, d),
            p + "mlp.down_proj.weight": (d, i),
        }
        if c.qkv_bias:
            shapes |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,)}
            shapes[p + "self_attn.v_proj.bias"] = (kv,)
        if c.o_bias:
            shapes[p + "self_attn.o_proj.bias"] = (d,)
        if c.mlp_bias:
            shapes |= {p + "mlp.gate_proj.bias": (i,), p + "mlp.up_proj.bias": (i,)}
            shapes[p + "mlp.down_proj.bias"] = (d,)
        if c.qk_norm:
            shapes[p + "self_attn.q_norm.weight"] = (c.head_dim,)
            shapes[p + "self_attn.k_norm.weight"] = (c.head_dim,)
    return shapes


def fuse_checkpoint(config: ModelConfig, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map Hugging Face tensor names onto this module's (fused q/k/v and gate/up) state dict."""
    embed = weights["model.embed_tokens.weight"]
    out = {"embed_tokens.weight": embed, "norm.weight": weights["model.norm.weight"]}
    # a tied head is the embedding itself (load_state_dict still wants the name)
    out["lm_head.weight"] = embed if config.tie_word_embeddings else weights["lm_head.weight"]
    for n in range(config.num_layers):
        src, dst = f"model.layers.{n}.", f"layers.{n}."
        for name in ("input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.o_proj.weight"):
            out[dst + name] = weights[src + name]
        for kind in ("weight", "bias"):
            qkv = [src + f"self_attn.{p}_proj.{kind}" for p in "qkv"]
            if qkv[0] in weights:
                out[dst + f"self_attn.qkv_proj.{kind}"] = torch.cat([weights[k] for k in qkv])
            gate_up = [src + f"mlp.{p}_proj.{kind}" for p in ("gate", "up")]
            if gate_up[0] in weights:
                out[dst + f"mlp.gate_up_proj.{kind}"] = torch.cat([weights[k] for k in gate_up])
            for name in (f"mlp.down_proj.{kind}", f"self_attn.o_proj.{kind}"):
                if src + name in weights:
                    out[dst + name] = weights[src + name]
        if config.qk_norm:
            for name in ("self_attn.q_norm.weight", "self_attn.k_norm.weight"):
                out[dst + name] = weights[src + name]
    return out


def from_checkpoint(config: ModelConfig, weights: dict[str, torch.Tensor]) -> Transformer:
    """A ``Transformer`` (eval mode) whose parameters are ``weights`` themselves (Hugging Face names).

    The module is built on the meta device, so nothing is allocated or randomly initialised,
    then ``load_state_dict(assign=True)`` adopts the tensors (on their device, in their dtype)
    instead of copying them into placeholders. Any parameter left on the meta device after
    that is a ``ModelLoadError``, never a silent empty weight.
    """
    with torch.device("meta"):
        model = Transformer(config)
    model.load_state_dict(fuse_checkpoint(config, weights), strict=True, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    device = model.embed_tokens.weight.device
    for module in model.modules():  # the KV cache and rotary tables: empty until setup_cache
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_meta:
                setattr(module, name, torch.empty(0, device=device))
    left = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise ModelLoadError(
            f"the checkpoint did not fill {', '.join(left)}: they would be left without values"
        )
    return model.eval()
