"""The public surface of workbench.kernels: names, dispatch rules, optional Triton, layering."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench.kernels as K
from workbench.errors import UsageError
from workbench.kernels import reference, triton_ops

KERNELS_DIR = Path(K.__file__).parent
OPS = ["apply_rotary", "apply_token_bitmask", "decode_attention", "rms_norm", "sample_tokens", "silu_and_mul"]


def test_public_names_are_pinned() -> None:
    assert K.__all__ == [
        "HAS_TRITON",
        "Backend",
        "apply_rotary",
        "apply_token_bitmask",
        "decode_attention",
        "rms_norm",
        "rotary_cos_sin",
        "sample_tokens",
        "silu_and_mul",
    ]
    assert reference.__all__ == OPS and triton_ops.__all__ == OPS
    for name in K.__all__:
        obj = getattr(K, name)
        assert not callable(obj) or name == "Backend" or obj.__doc__, name


def test_cpu_tensors_use_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(reference, "rms_norm", lambda *a: calls.append("torch") or a[0])
    monkeypatch.setattr(triton_ops, "rms_norm", lambda *a: calls.append("triton") or a[0])
    x, w = torch.randn(2, 8), torch.ones(8)
    K.rms_norm(x, w, 1e-6)
    K.rms_norm(x, w, 1e-6, backend="torch")
    if K.HAS_TRITON:
        K.rms_norm(x, w, 1e-6, backend="triton")
    assert calls == ["torch", "torch"] + (["triton"] if K.HAS_TRITON else [])


def test_env_var_steers_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.empty(0)
    assert not K._use_triton(x, "auto")
    monkeypatch.setenv("WORKBENCH_KERNELS", "torch")
    assert not K._use_triton(x, "auto")
    if K.HAS_TRITON:
        monkeypatch.setenv("WORKBENCH_KERNELS", "triton")
        assert K._use_triton(x, "auto")
        assert not K._use_triton(x, "torch")  # an explicit backend wins


def test_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="backend"):
        K.silu_and_mul(torch.randn(2), torch.randn(2), backend="cuda")  # type: ignore[arg-type]


def test_triton_on_mixed_devices_is_a_usage_error() -> None:
    pytest.importorskip("triton")
    with pytest.raises(UsageError, match="different devices"):
        triton_ops.rms_norm(torch.randn(2, 8), torch.ones(8, device="meta"), 1e-6)


def test_kernels_import_nothing_above_types() -> None:
    # docs/architecture.md, "Layers": kernels may import workbench.errors and workbench.types only.
    for path in KERNELS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench"):
                assert node.module in ("workbench.errors", "workbench.types"), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("workbench"), (path.name, alias.name)


def test_modules_stay_small() -> None:
    for path in KERNELS_DIR.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path.name


SCRIPT = """
import sys
sys.modules["triton"] = None  # as if Triton were not installed
import torch
import workbench.kernels as K
from workbench.errors import UsageError
assert not K.HAS_TRITON
x = torch.randn(2, 8)
assert torch.equal(K.rms_norm(x, torch.ones(8), 1e-6), K.reference.rms_norm(x, torch.ones(8), 1e-6))
try:
    K.rms_norm(x, torch.ones(8), 1e-6, backend="triton")
except UsageError as e:
    assert "not installed" in str(e)
else:
    raise SystemExit("forcing Triton without Triton should fail")
print("ok")
"""


def test_works_without_triton() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


LAZY_SCRIPT = """
import sys
import torch
import workbench.kernels as K
x = torch.randn(2, 8)
K.rms_norm(x, torch.ones(8), 1e-6)  # CPU tensors: the torch reference
K.silu_and_mul(x, x)
assert K.HAS_TRITON and "triton" not in sys.modules, "a CPU call imported Triton"
got = K.rms_norm(x, torch.ones(8), 1e-6, backend="triton")  # the interpreter: now it is imported
assert "triton" in sys.modules and torch.allclose(got, K.reference.rms_norm(x, torch.ones(8), 1e-6))
from workbench.kernels import activation
assert type(activation.silu_and_mul_kernel).__name__ == "JITFunction"  # swapped in for the Deferred
print("ok")
"""


def test_triton_is_imported_only_when_a_kernel_runs() -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", LAZY_SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
