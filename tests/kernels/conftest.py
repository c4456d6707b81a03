"""Shared helpers for the kernel tests.

The Triton launchers run under the Triton interpreter whenever their tensors are on the CPU
(``workbench.kernels._triton.launch`` swaps in interpreted twins of every jitted function), so
no ``TRITON_INTERPRET`` is needed here and the order in which test modules import the package
does not matter. Shapes stay small: the interpreter costs about a millisecond per program.

Tests that take the ``device`` fixture run twice where a CUDA device is present: on the CPU
(interpreted) and on the GPU, where the launchers compile the kernels for real. Without CUDA
the GPU half is deselected, and the run says so (tests/conftest.py). To check the GPU half's
test code on a machine without one, ``WORKBENCH_TEST_CUDA_DEVICE=cpu`` runs it on CPU tensors.
"""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def triton_available() -> None:
    """Skip a test that needs Triton where it is not installed (the references still run)."""
    pytest.importorskip("triton")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest) -> str:
    """Where a kernel test's tensors live: the CPU (interpreter) and, with CUDA, the GPU (compiled)."""
    if request.param == "cuda":
        return os.environ.get("WORKBENCH_TEST_CUDA_DEVICE", "cuda")
    return "cpu"
