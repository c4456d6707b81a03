"""Every Triton kernel compiles to an sm_90 (H100/H200) cubin, without a GPU.

The interpreter checks the maths but not what only the compiler sees (``tl.dot`` shapes,
loop-carried types in ``while`` loops, constexpr branches, register pressure). Triton's
compiler and ptxas need no driver, so this runs on any machine with Triton installed. The
configurations are the ones the launchers pick for a Llama-3.2-1B-sized model (D=2048,
Dh=64, 32 query / 8 KV heads, V=128256), bf16 and fp32.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import pytest

pytest.importorskip("triton")

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

TARGET = GPUTarget("cuda", 90, 32)
FLOAT_SCALARS = {"eps", "qk_scale"}


def kernel(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"workbench.kernels.{module}"), name)


def compile_kernel(fn: Any, pointers: dict[str, str], constexprs: dict[str, Any], num_warps: int = 4) -> Any:
    signature = {}
    for arg in fn.arg_names:
        if arg in constexprs:
            signature[arg] = "constexpr"
        elif arg in pointers:
            signature[arg] = pointers[arg]
        else:
            signature[arg] = "fp32" if arg in FLOAT_SCALARS else "i32"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Triton 3.9 warns about the FP-fusion default
        source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
        return triton.compile(source, target=TARGET, options={"num_warps": num_warps})


CASES = {
    "rms_norm": (
        kernel("rms_norm", "rms_norm_kernel"),
        {"x_ptr": "*bf16", "w_ptr": "*bf16", "out_ptr": "*bf16"},
        {"BLOCK_D": 4096},
        8,  # the launcher's choice for rows of 2049-8192
    ),
    "rotary": (
        kernel("rotary", "rotary_kernel"),
        {"x_ptr": "*bf16", "cos_ptr": "*bf16", "sin_ptr": "*bf16", "out_ptr": "*bf16"},
        {"BLOCK_H": 32, "BLOCK_HALF": 32},
    ),
    "silu_and_mul": (
        kernel("activation", "silu_and_mul_kernel"),
        {"gate_ptr": "*bf16", "up_ptr": "*bf16", "out_ptr": "*bf16"},
        {"BLOCK": 1024},
    ),
    "bitmask": (
        kernel("bitmask", "bitmask_kernel"),
        {"logits_ptr": "*fp32", "mask_ptr": "*i32", "out_ptr": "*fp32"},
        {"BLOCK": 1024},
    ),
    "decode_split_bf16": (
        kernel("decode_attention", "split_kernel"),
        {
            **{p: "*bf16" for p in ("q_ptr", "k_ptr", "v_ptr", "out_ptr")},
            **{p: "*fp32" for p in ("m_ptr", "l_ptr", "acc_ptr")},
            "len_ptr": "*i32",
        },
        {"NUM_SPLITS": 8, "BLOCK_G": 16, "BLOCK_T": 64, "BLOCK_D": 64, "UPCAST": False},
    ),
    "decode_split_bf16_dh128": (
        kernel("decode_attention", "split_kernel"),
        {
            **{p: "*bf16" for p in ("q_ptr", "k_ptr", "v_ptr", "out_ptr")},
            **{p: "*fp32" for p in ("m_ptr", "l_ptr", "acc_ptr")},
            "len_ptr": "*i32",
        },
        {"NUM_SPLITS": 64, "BLOCK_G": 16, "BLOCK_T": 64, "BLOCK_D": 128, "UPCAST": False},
    ),
    "decode_split_fp32_single": (
        kernel("decode_attention", "split_kernel"),
        {
            **{p: "*fp32" for p in ("q_ptr", "k_ptr", "v_ptr", "out_ptr", "m_ptr", "l_ptr", "acc_ptr")},
            "len_ptr": "*i64",
        },
        {"NUM_SPLITS": 1, "BLOCK_G": 16, "BLOCK_T": 64, "BLOCK_D": 64, "UPCAST": True},
    ),
    "decode_merge": (
        kernel("decode_attention", "merge_kernel"),
        {"m_ptr": "*fp32", "l_ptr": "*fp32", "acc_ptr": "*fp32", "out_ptr": "*bf16"},
        {"NUM_SPLITS": 8, "BLOCK_D": 64},
    ),
    "sample": (
        kernel("sampling", "sample_kernel"),
        {
            "logits_ptr": "*bf16",
            "mask_ptr": "*i32",
            "temp_ptr": "*fp32",
            "topk_ptr": "*i32",
            "topp_ptr": "*fp32",
            "seed_ptr": "*i64",
            "out_ptr": "*i64",
        },
        {"HAS_MASK": True, "BLOCK_V": 4096},
        8,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiles_for_sm90(case: str) -> None:
    compiled = compile_kernel(*CASES[case])
    assert len(compiled.asm["cubin"]) > 0


def test_compiling_still_works_after_interpreted_launches(tmp_path, monkeypatch) -> None:
    # The interpreter patches triton.language builtins and leaves some patched after a kernel
    # calls a device function; launch() must put them back or this compile would fail.
    import torch

    from workbench.kernels import triton_ops

    logits = torch.randn(2, 40)
    kw = {"temperature": torch.tensor([1.0, 0.5]), "top_k": torch.tensor([3, 0], dtype=torch.int32)}
    kw |= {"top_p": torch.tensor([0.9, 1.0]), "seed": torch.tensor([1, 2]), "step": 0, "bitmask": None}
    triton_ops.sample_tokens(logits, **kw)  # interpreted, calls helpers and tl.sum/tl.max
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # a cache hit would skip the front end
    compiled = compile_kernel(*CASES["bitmask"])
    assert len(compiled.asm["cubin"]) > 0
