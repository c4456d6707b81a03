"""Shared helpers for the kernel tests.

The Triton launchers run under the Triton interpreter whenever their tensors are on the CPU
(``workbench.kernels._triton.launch`` swaps in interpreted twins of every jitted function), so
no ``TRITON_INTERPRET`` is needed here and the order in which test modules import the package
does not matter. Shapes stay small: the interpreter costs about a millisecond per program.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def triton_available() -> None:
    """Skip a test that needs Triton where it is not installed (the references still run)."""
    pytest.importorskip("triton")
