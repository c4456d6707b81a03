"""Turn a flow's ``model:`` spec into a ``Model``, loading each model once per process.

Specs: ``default`` (the built-in tiny model), ``{local: PATH}``, ``{openai: {base_url,
model, api_key_env}}``, or a name from the flow's ``models:`` mapping. Backends register
a loader per spec key; a spec no loaded backend can serve is a clear
``ModelUnavailable``, never a made-up answer.

Loaded models are cached for the life of the process under a key the backend computes
from the spec (the local backend: the resolved checkpoint directory, dtype and device), so
``default`` and ``{local: <the same directory>}``, or two nodes, two flows, two runs naming
one checkpoint, share one model. The cache is thread-safe: callers asking for a model
another thread is loading wait for that load instead of starting their own, while
different models load in parallel. Only the backend module a spec needs is imported
(an ``openai`` spec never imports torch, a local one never imports httpx).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench.errors import ModelUnavailable, UsageError
from workbench.models.base import Model

__all__ = ["LoadedModel", "load_model", "register_backend", "resolve_model", "spec_kind"]

# The module that registers each built-in kind (imported on first use of the kind).
_BUILTIN_MODULES = {
    "default": "workbench.models.local",
    "local": "workbench.models.local",
    "openai": "workbench.models.openai_client",
}


@dataclass(frozen=True)
class _Backend:
    loader: Callable[[Any], Model]
    key: Callable[[Any], Hashable]


@dataclass(frozen=True)
class LoadedModel:
    """What ``load_model`` found: the model, whether it was loaded before, and this call's seconds."""

    model: Model
    cached: bool
    seconds: float  # the load on a miss; on a hit ~0, or the wait for another thread's load


_BACKENDS: dict[str, _Backend] = {}
_CACHE: dict[Hashable, Model] = {}
_LOADING: dict[Hashable, threading.Lock] = {}  # one lock per key: one load per model
_GUARD = threading.Lock()  # guards _LOADING


def register_backend(
    kind: str, loader: Callable[[Any], Model], key: Callable[[Any], Hashable] | None = None
) -> None:
    """Register ``loader(spec_value) -> Model`` for specs of ``kind`` (``default``, ``local``, ``openai``).

    ``key(spec_value)`` names the model the value means, for the cache (default: the kind
    and the value's ``repr``); values with equal keys share one loaded model.
    """
    _BACKENDS[kind] = _Backend(loader, key or (lambda value: (kind, repr(value))))


def spec_kind(spec: Any, named: Mapping[str, Any] | None = None) -> tuple[str, Any]:
    """Split a model spec into ``(kind, value)``, resolving flow-level names."""
    seen: set[str] = set()
    while isinstance(spec, str) and spec != "default" and named and spec in named:
        if spec in seen:
            raise UsageError(f"model name {spec!r} refers to itself")
        seen.add(spec)
        spec = named[spec]
    if spec == "default" or spec is None:
        return "default", None
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((kind, value),) = spec.items()
        if kind in ("local", "openai"):
            return kind, value
    raise UsageError(
        f"model spec {spec!r} is not one of: default, {{local: PATH}}, "
        "{openai: {base_url: URL, model: NAME, api_key_env: VAR}}, or a name under the flow's models:"
    )


def resolve_model(spec: Any, named: Mapping[str, Any] | None = None) -> Model:
    """The ``Model`` for ``spec``; loaded once per process and reused."""
    return load_model(spec, named).model


def load_model(spec: Any, named: Mapping[str, Any] | None = None) -> LoadedModel:
    """``resolve_model``, also saying whether the model was cached and how long this call took."""
    start = time.perf_counter()
    kind, value = spec_kind(spec, named)
    backend = _backend(kind)
    key = backend.key(value)
    model = _CACHE.get(key)
    if model is None:
        with _GUARD:
            lock = _LOADING.setdefault(key, threading.Lock())
        with lock:
            model = _CACHE.get(key)  # another thread may have loaded it while we waited
            if model is None:
                model = _CACHE[key] = backend.loader(value)
                return LoadedModel(model, cached=False, seconds=time.perf_counter() - start)
    return LoadedModel(model, cached=True, seconds=time.perf_counter() - start)


def _backend(kind: str) -> _Backend:
    """The backend for ``kind``, importing the built-in module that registers it on first use."""
    why = ""
    if kind not in _BACKENDS and kind in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[kind])
        except ImportError as exc:
            why = f" ({_BUILTIN_MODULES[kind]} cannot be imported: {exc})"
    backend = _BACKENDS.get(kind)
    if backend is None:
        for module in sorted(set(_BUILTIN_MODULES.values())):  # to list what is available
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
        raise ModelUnavailable(
            f"no model backend for {kind!r} specs is available in this installation{why} "
            f"(available: {', '.join(sorted(_BACKENDS)) or 'none'}); "
            "install the model extra (`pip install agent-workbench[model]`) or pass --model"
        )
    return backend
