"""Optional Triton: import it if present, and launch kernels compiled or interpreted.

Kernels are ordinary module-level ``@jit`` functions (``triton.jit`` when Triton is installed,
a no-op otherwise, so ``import workbench.kernels`` works without Triton and the public
functions fall back to their torch references).

Why :func:`launch` takes an ``interpret`` flag: ``@triton.jit`` decides at *decoration* time
whether a function is compiled or interpreted (``TRITON_INTERPRET`` /
``triton.knobs.runtime.interpret``), and Triton's own library (``tl.sum``, ``tl.max``,
``tl.cdiv``...) is decorated when ``triton.language`` is first imported. A process that
imported Triton without the flag (any test suite that touched a model first) would be stuck
with compiled kernels and fail on a CPU with "0 active drivers". So an interpreted launch
swaps every ``JITFunction`` in ``triton.language`` and in the kernel's own module for an
``InterpretedFunction`` of the same Python function, runs the grid, and swaps them back. The
same kernel object therefore runs compiled on CUDA tensors and interpreted on CPU tensors, in
one process, whatever the environment said at import.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from workbench.errors import UsageError

try:  # Triton is optional: CPU users run the torch references only.
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None
    tl = None
    HAS_TRITON = False

__all__ = [
    "HAS_TRITON",
    "jit",
    "launch",
    "next_power_of_2",
    "require_triton",
    "tl",
    "triton",
    "wants_interpreter",
]

# The swap below is process-global; serialise interpreted launches.
_LOCK = threading.RLock()
_INTERPRETED: dict[Any, Any] = {}


def jit(fn: Any = None, **kwargs: Any) -> Any:
    """``triton.jit`` when Triton is installed; otherwise leave the function undecorated."""
    if not HAS_TRITON:
        return fn if fn is not None else (lambda f: f)
    return triton.jit(fn, **kwargs) if fn is not None else triton.jit(**kwargs)


def require_triton() -> None:
    """Raise a clear :class:`UsageError` when a Triton launcher is called without Triton."""
    if not HAS_TRITON:
        raise UsageError(
            "Triton is not installed: install the 'gpu' extra (pip install triton) or call the "
            "torch reference in workbench.kernels.reference instead."
        )


def _interpreted(fn: Any) -> Any:
    """The ``InterpretedFunction`` twin of a ``JITFunction`` (itself if already interpreted)."""
    if not isinstance(fn, JITFunction):
        return fn
    twin = _INTERPRETED.get(fn.fn)
    if twin is None:
        twin = _INTERPRETED[fn.fn] = InterpretedFunction(fn.fn)
    return twin


def _language_modules(extra: ModuleType) -> tuple[ModuleType, ...]:
    """The modules whose jitted functions a kernel may call: Triton's language and ``extra``."""
    return (tl, tl.core, tl.standard, tl.math, tl.random, extra)


def _patched_objects(extra: ModuleType) -> list[Any]:
    """Everything the interpreter patches (``triton.runtime.interpreter._patch_lang``) or we swap."""
    objects: list[Any] = [*_language_modules(extra), tl.core.tensor, tl.core.dtype]
    for name in ("condition", "tensor_descriptor_base"):
        if hasattr(tl.core, name):
            objects.append(getattr(tl.core, name))
    return objects


@contextlib.contextmanager
def _interpreter_scope(extra: ModuleType) -> Iterator[None]:
    """Make every jitted function reachable from a kernel interpreted, then put everything back.

    Two things need undoing afterwards: our swap of ``JITFunction``s, and the interpreter's own
    patching of ``triton.language`` builtins, which it leaves in place whenever a kernel calls a
    device function (``tl.sum``, a helper). Left patched, a later *compiled* launch in the same
    process would run its builtins through the interpreter's builder and fail. So every
    attribute of the patched objects is snapshotted and any changed value restored (and anything
    added to a class removed). Names the interpreter *adds* to module globals stay: its cached
    rewritten functions look them up.
    """
    objects = _patched_objects(extra)
    runtime = triton.knobs.runtime
    with _LOCK:
        snapshot = [(obj, dict(vars(obj))) for obj in objects]
        before = runtime.interpret
        runtime.interpret = True
        try:
            for mod in _language_modules(extra):
                for name, value in list(vars(mod).items()):
                    if isinstance(value, JITFunction):
                        setattr(mod, name, _interpreted(value))
            yield
        finally:
            for obj, saved in snapshot:
                current = vars(obj)
                for name, value in saved.items():
                    if current.get(name, _MISSING) is not value:
                        setattr(obj, name, value)
                if not isinstance(obj, ModuleType):  # classes: drop what the interpreter added
                    for name in set(current) - set(saved):
                        delattr(obj, name)
            runtime.interpret = before


_MISSING = object()


def launch(kernel: Any, grid: tuple[int, ...], interpret: bool, *args: Any, **kwargs: Any) -> None:
    """``kernel[grid](*args, **kwargs)``: compiled, or under the Triton interpreter."""
    require_triton()
    if not interpret:
        kernel[grid](*args, **kwargs)
        return
    with _interpreter_scope(sys.modules[kernel.fn.__module__]):
        _interpreted(kernel)[grid](*args, **kwargs)


def wants_interpreter(*tensors: torch.Tensor) -> bool:
    """True when the tensors live on the CPU (run under the interpreter), False on CUDA.

    Mixed devices are a caller bug: Triton would read host memory from the GPU or vice versa.
    Every launcher calls this first, so it also reports a missing Triton.
    """
    require_triton()
    devices = {t.device.type for t in tensors}
    if len(devices) != 1:
        raise UsageError(f"kernel inputs live on different devices: {sorted(devices)}")
    kind = devices.pop()
    if kind == "cuda":
        return False
    if kind == "cpu":
        return True
    raise UsageError(f"Triton kernels run on CUDA tensors (or CPU under the interpreter), not {kind!r}")


@jit
def cast_rne(x, dtype: tl.constexpr):
    """Cast fp32 ``x`` to ``dtype`` rounding to nearest even, the same compiled and interpreted.

    The interpreter truncates fp32 -> bf16 (the GPU rounds to nearest even), so for bf16 the
    rounding is done here in integers: add half an ulp (ties to even), clear the low 16 bits,
    after which the cast is exact everywhere.
    """
    if dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        x = bits.to(tl.float32, bitcast=True)
    return x.to(dtype)


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (``tl.arange`` only takes power-of-two extents)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
