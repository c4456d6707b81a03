"""The Triton launcher of every kernel, under the public names.

Each runs compiled on CUDA tensors and under the Triton interpreter on CPU tensors (that is
how the tests exercise them without a GPU). Calling one without Triton installed raises
:class:`workbench.errors.UsageError`.
"""

from __future__ import annotations

from .activation import silu_and_mul_triton as silu_and_mul
from .bitmask import apply_token_bitmask_triton as apply_token_bitmask
from .decode_attention import decode_attention_triton as decode_attention
from .rms_norm import rms_norm_triton as rms_norm
from .rotary import apply_rotary_triton as apply_rotary
from .sampling import sample_tokens_triton as sample_tokens

__all__ = [
    "apply_rotary",
    "apply_token_bitmask",
    "decode_attention",
    "rms_norm",
    "sample_tokens",
    "silu_and_mul",
]
