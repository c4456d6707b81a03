"""Turn a flow's ``model:`` spec (docs/architecture.md, "Flow files") into a ``Model``.

Specs: ``default`` (the built-in tiny model), ``{local: PATH}``, ``{openai: {base_url,
model, api_key_env}}``, or a name from the flow's ``models:`` mapping. Backends register
a loader per spec key; a spec no loaded backend can serve is a clear
``ModelUnavailable``, never a made-up answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from workbench.errors import ModelUnavailable, UsageError
from workbench.models.base import Model

__all__ = ["register_backend", "resolve_model", "spec_kind"]

_BACKENDS: dict[str, Callable[[Any], Model]] = {}
_CACHE: dict[str, Model] = {}


def register_backend(kind: str, loader: Callable[[Any], Model]) -> None:
    """Register ``loader(spec_value) -> Model`` for specs of ``kind`` (``default``, ``local``, ``openai``)."""
    _BACKENDS[kind] = loader


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
    kind, value = spec_kind(spec, named)
    key = f"{kind}:{value!r}"
    if key in _CACHE:
        return _CACHE[key]
    _load_builtin_backends()
    loader = _BACKENDS.get(kind)
    if loader is None:
        raise ModelUnavailable(
            f"no model backend for {kind!r} specs is available in this installation "
            f"(available: {', '.join(sorted(_BACKENDS)) or 'none'}); "
            "install the model extra (`pip install agent-workbench[model]`) or pass --model"
        )
    model = loader(value)
    _CACHE[key] = model
    return model


def _load_builtin_backends() -> None:
    """Import the backends shipped with the package so they register themselves."""
    import importlib

    for module in ("workbench.models.local", "workbench.models.openai_client"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
