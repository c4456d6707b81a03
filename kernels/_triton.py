"""Optional Triton, imported on first use: launch kernels compiled or interpreted.

Kernels are ordinary module-level ``@jit`` functions. Importing ``workbench.kernels`` does not
import Triton (0.1-0.3 s that a CPU run, which only calls the torch references, never needs):
until a Triton kernel is launched or asked for, ``@jit`` leaves a :class:`Deferred` in place of
the ``triton.jit`` function, and ``triton``/``tl`` are stand-ins. :func:`load_triton` (every
launcher gets there through :func:`wants_interpreter` and :func:`launch`) imports Triton,
jits every deferred kernel and swaps the real objects into the kernel modules' globals, where
Triton's compiler looks kernel bodies' names up. Without Triton the public functions fall back
to their torch references.

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
import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from workbench.errors import UsageError


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return False


HAS_TRITON = _installed("triton")  # Triton is optional: CPU users run the torch references only.

__all__ = [
    "HAS_TRITON",
    "Deferred",
    "jit",
    "launch",
    "load_triton",
    "next_power_of_2",
    "require_triton",
    "tl",
    "triton",
    "wants_interpreter",
]


class _StandIn:
    """``triton`` or ``tl`` before Triton is imported: any attribute imports it first."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        load_triton()
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


class Deferred:
    """A ``@jit`` kernel before Triton is imported; :func:`load_triton` turns it into ``triton.jit(fn)``."""

    def __init__(self, fn: Any, kwargs: dict[str, Any]) -> None:
        self.fn = fn
        self.kwargs = kwargs
        self.jitted: Any = None
        _DEFERRED.append(self)

    def resolve(self) -> Any:
        """The ``JITFunction`` (Triton imported now if it was not)."""
        load_triton()
        return self.jitted

    def __getitem__(self, grid: Any) -> Any:
        return self.resolve()[grid]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:  # arg_names, src...: the JITFunction's
        if attr == "jitted":  # an instance made without __init__ (copy, pickle): no recursion
            raise AttributeError(attr)
        return getattr(self.resolve(), attr)


triton: Any = _StandIn("triton")
tl: Any = _StandIn("triton.language")
JITFunction: Any = None
InterpretedFunction: Any = None
_DEFERRED: list[Deferred] = []
_LOAD_LOCK = threading.RLock()
_LOADED = False


def load_triton() -> None:
    """Import Triton, jit every deferred kernel and put the real objects in the kernel modules."""
    global JITFunction, InterpretedFunction, _LOADED  # triton and tl: swapped below with the rest
    if _LOADED:
        return
    require_triton()
    with _LOAD_LOCK:
        if _LOADED:
            return
        try:
            import triton as triton_module
            import triton.language as language
            from triton.runtime.interpreter import InterpretedFunction as interpreted
            from triton.runtime.jit import JITFunction as jit_function
        except ImportError as exc:
            raise UsageError(f"Triton is installed but cannot be imported: {exc}") from exc
        stand_ins = {id(triton): triton_module, id(tl): language}
        JITFunction, InterpretedFunction = jit_function, interpreted
        for deferred in _DEFERRED:
            deferred.jitted = triton_module.jit(deferred.fn, **deferred.kwargs)
        package = __name__.rpartition(".")[0] + "."
        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith(package):
                continue
            for attr, value in list(vars(module).items()):
                if isinstance(value, Deferred):
                    setattr(module, attr, value.jitted)
                elif id(value) in stand_ins:
                    setattr(module, attr, stand_ins[id(value)])
        _LOADED = True


# The swap below is process-global; serialise interpreted launches.
_LOCK = threading.RLock()
_INTERPRETED: dict[Any, Any] = {}


def jit(fn: Any = None, **kwargs: Any) -> Any:
    """``triton.jit``, deferred until Triton is first used; without Triton, the function undecorated."""
    if not HAS_TRITON:
        return fn if fn is not None else (lambda f: f)
    if _LOADED:
        return triton.jit(fn, **kwargs) if fn is not None else triton.jit(**kwargs)
    return Deferred(fn, kwargs) if fn is not None else (lambda f: Deferred(f, kwargs))


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
    load_triton()
    if isinstance(kernel, Deferred):
        kernel = kernel.jitted
    if not interpret:
        kernel[grid](*args, **kwargs)
        return
    with _interpreter_scope(sys.modules[kernel.fn.__module__]):
        _interpreted(kernel)[grid](*args, **kwargs)


def wants_interpreter(*tensors: torch.Tensor) -> bool:
    """True when the tensors live on the CPU (run under the interpreter), False on CUDA.

    Mixed devices are a caller bug: Triton would read host memory from the GPU or vice versa.
    Every launcher calls this first, so it also reports a missing Triton and imports Triton.
    """
    load_triton()
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
