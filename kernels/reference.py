"""The torch reference of every kernel, under the public names.

These define the semantics; the Triton kernels are tested against them. They run on any
device torch supports and need no Triton.
"""

from __future__ import annotations

from .activation import silu_and_mul_reference as silu_and_mul
from .bitmask import apply_token_bitmask_reference as apply_token_bitmask
from .decode_attention import decode_attention_reference as decode_attention
from .rms_norm import rms_norm_reference as rms_norm
from .rotary import apply_rotary_reference as apply_rotary
from .sampling import sample_tokens_reference as sample_tokens

__all__ = [
    "apply_rotary",
    "apply_token_bitmask",
    "decode_attention",
    "rms_norm",
    "sample_tokens",
    "silu_and_mul",
]
