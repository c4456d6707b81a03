"""Tolerances and comparison helpers shared by the kernel tests."""

from __future__ import annotations

import torch

# fp32 kernels differ from the references only by summation order; half types by a rounding
# step or two of the output dtype.
TOLERANCES = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float16: {"atol": 2e-3, "rtol": 2e-3},
    torch.bfloat16: {"atol": 1.6e-2, "rtol": 1.6e-2},
}

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """``torch.testing.assert_close`` with the tolerance of ``dtype`` (default: ``expected``'s)."""
    tol = TOLERANCES[dtype or expected.dtype]
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    torch.testing.assert_close(actual.float(), expected.float(), **tol)
