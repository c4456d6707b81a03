"""What a flow may run when nobody trusts it: the registry of safe tools, and model specs.

A flow file may come from anyone. Importing a module runs its code, and a callable of our
own may be just as strong (``workbench.api:run`` runs another flow with any ``trust`` its
inputs say), so an untrusted flow may only call tools registered here as safe: pure
functions that do nothing but compute their outputs. ``trust=True`` in Python or
``--trust`` on the command line lifts the rule, and then any importable tool runs.

Register a tool with ``@safe_tool``. Importing a module is the only way its tools get
registered, and an untrusted flow imports nothing but ``SAFE_TOOL_MODULES`` (the shipped
example tools); a module of your own registers its tools when you import it yourself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from workbench.errors import TrustError, UsageError

__all__ = ["SAFE_TOOLS", "SAFE_TOOL_MODULES", "check_model_spec", "safe_tool", "safe_tool_for"]

F = TypeVar("F", bound=Callable[..., Any])

# ``module:qualified_name`` -> function, filled by ``@safe_tool``.
SAFE_TOOLS: dict[str, Callable[..., Any]] = {}
# Modules whose import registers safe tools: the only ones an untrusted flow causes to be imported.
SAFE_TOOL_MODULES = ("workbench.examples.desk", "workbench.examples.support", "workbench.examples.trading")


def safe_tool(fn: F) -> F:
    """Register ``fn`` as safe for untrusted flows (as ``module:qualname``); returns it unchanged.

    Only for functions that compute their outputs from their inputs and touch nothing else:
    no files, network, processes, imports or other flows.
    """
    SAFE_TOOLS[f"{fn.__module__}:{fn.__qualname__}"] = fn
    return fn


def safe_tool_for(ref: str, *, where: str) -> Callable[..., Any]:
    """The registered safe tool ``ref`` names, or a ``TrustError`` saying what to do.

    ``where`` names the flow and node for the message.
    """
    module = ref.partition(":")[0]
    if ref not in SAFE_TOOLS and module in SAFE_TOOL_MODULES and module not in sys.modules:
        importlib.import_module(module)  # its @safe_tool decorators fill the registry
    fn = SAFE_TOOLS.get(ref)
    if fn is None:
        raise TrustError(
            f"{where}: tool '{ref}' is not in the registry of safe tools (workbench.runtime.trust), so "
            "this flow may not run it untrusted: importing or calling arbitrary code could do anything. "
            "If you trust this flow, pass --trust on the command line or trust=True in Python, which "
            "allows any importable tool"
        )
    return fn


def check_model_spec(spec: Any, named: Mapping[str, Any], *, where: str) -> None:
    """Refuse a flow's model spec that would hand a secret of this process to the flow.

    ``{openai: {api_key_env: VAR}}`` reads the environment variable ``VAR`` and sends it to
    the flow's ``base_url``: an untrusted flow could send any secret anywhere. A spec that is
    malformed passes here; resolving it at run time reports that.
    """
    from workbench.models.registry import spec_kind

    try:
        kind, value = spec_kind(spec, named)
    except UsageError:
        return
    if kind == "openai" and isinstance(value, Mapping) and value.get("api_key_env"):
        raise TrustError(
            f"{where}: the model spec reads the environment variable {value['api_key_env']!r} (api_key_env) "
            f"and sends it to {value.get('base_url')!r}, which an untrusted flow may not do. If you trust "
            "this flow, pass --trust on the command line or trust=True in Python; or give the model "
            "yourself with --model / model="
        )
