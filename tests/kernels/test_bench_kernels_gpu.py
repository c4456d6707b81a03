"""The GPU benchmark script, exercised on the CPU: its cases are well formed and its checks pass.

The real run needs an NVIDIA GPU; here every case is built at its "tiny" size on the CPU (Triton
interpreted) and its correctness check is run, so a broken case is found before GPU time is spent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernels_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_kernels_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    module.DEVICE = "cpu"
    return module


SUITES = ["rms_norm", "apply_rotary", "silu_and_mul", "decode_attention", "sampling"]


@pytest.mark.parametrize("suite", SUITES)
def test_tiny_cases_check_ok(bench, suite: str) -> None:
    for case in bench.SUITES[suite](torch.float32, "tiny"):
        assert case.nbytes > 0
        assert case.compare(case.run_triton(), case.run_torch()), (case.kernel, case.shape)


@pytest.mark.skipif(torch.cuda.is_available(), reason="there is a GPU here")
def test_without_cuda_it_says_so(bench, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
