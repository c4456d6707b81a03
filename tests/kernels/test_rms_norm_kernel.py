"""RMSNorm: Triton (interpreted) against the torch reference, and the reference against HF."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import UsageError
from workbench.kernels import reference, triton_ops

from .kernel_testing import DTYPES, assert_close

pytestmark = pytest.mark.usefixtures("triton_available")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 96), (2, 3, 130), (5, 257)])
def test_triton_matches_reference(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = (torch.randn(shape) * 3).to(dtype)  # [..., D]
    w = (torch.rand(shape[-1]) + 0.5).to(dtype)  # [D]
    assert_close(triton_ops.rms_norm(x, w, 1e-5), reference.rms_norm(x, w, 1e-5))


def test_strided_rows_and_mixed_weight_dtype() -> None:
    base = torch.randn(4, 200, dtype=torch.bfloat16)
    x = base[:, 10:110]  # [4, 100], row stride 200
    w = torch.rand(100)  # fp32 weight: the result promotes to fp32, as in eager torch
    out = triton_ops.rms_norm(x, w, 1e-6)
    assert out.dtype == torch.float32
    assert_close(out, reference.rms_norm(x, w, 1e-6))


def test_reference_matches_hf_llama_rmsnorm() -> None:
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    norm = llama.LlamaRMSNorm(48, eps=1e-6).to(torch.bfloat16)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(48) + 0.5)
    x = torch.randn(2, 5, 48, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(reference.rms_norm(x, norm.weight, 1e-6), norm(x))


def test_bad_weight_shape_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="weight shape"):
        reference.rms_norm(torch.randn(2, 8), torch.ones(7), 1e-6)
    with pytest.raises(UsageError, match="weight shape"):
        triton_ops.rms_norm(torch.randn(2, 8), torch.ones(7), 1e-6)
