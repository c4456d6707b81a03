"""The GPU benchmark script, exercised on the CPU: its cases are well formed and its checks pass.

The real run needs an NVIDIA GPU; here every case is built at its "tiny" size on the CPU (Triton
interpreted) and its correctness check is run, so a broken case is found before GPU time is spent.
"""

from __future__ import annotations

import pytest
import torch

from tests.bench_loader import load_benchmark

pytest.importorskip("triton")


@pytest.fixture(scope="module")
def bench():
    module = load_benchmark("bench_kernels_gpu")
    module.DEVICE = "cpu"
    return module


SUITES = ["rms_norm", "apply_rotary", "silu_and_mul", "decode_attention", "sampling"]


@pytest.mark.parametrize("suite", SUITES)
def test_tiny_cases_check_ok(bench, suite: str) -> None:
    for case in bench.SUITES[suite](torch.float32, "tiny"):
        assert case.nbytes > 0
        assert case.compare(case.run_triton(), case.run_torch()), (case.kernel, case.shape)


@pytest.mark.cpu_only
def test_without_cuda_it_says_so(bench, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
