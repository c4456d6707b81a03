"""SiLU-and-multiply: Triton (interpreted) against the torch reference."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import UsageError
from workbench.kernels import reference, triton_ops

from .kernel_testing import DTYPES, assert_close

pytestmark = pytest.mark.usefixtures("triton_available")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 100), (2, 2, 1030)])
def test_triton_matches_reference(shape: tuple[int, ...], dtype: torch.dtype, device: str) -> None:
    gate = (torch.randn(shape) * 4).to(device, dtype)
    up = torch.randn(shape).to(device, dtype)
    assert_close(triton_ops.silu_and_mul(gate, up), reference.silu_and_mul(gate, up))


def test_halves_of_a_fused_projection() -> None:
    gate_up = torch.randn(3, 2, 2 * 70)  # [B, T, 2F] as a fused gate_up projection returns it
    gate, up = gate_up.chunk(2, dim=-1)  # strided views, row stride 2F
    assert_close(triton_ops.silu_and_mul(gate, up), reference.silu_and_mul(gate, up))


def test_shape_mismatch_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        reference.silu_and_mul(torch.randn(2, 4), torch.randn(2, 5))
