"""Finding the Python function behind a ``tool:`` node, under the trust rule.

A flow file may name any ``module:function``, and importing a module runs its code. So
an untrusted flow runs only the tools in the registry of safe tools
(``workbench.runtime.trust``); a trusted one (``--trust`` on the command line,
``trust=True`` in Python) any importable tool. Functions handed over as Python objects
(``Node.tool(name, fn, ...)``) are trusted: the caller already holds them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from workbench.errors import FlowError
from workbench.flow.model import Node
from workbench.runtime.trust import safe_tool_for

__all__ = ["resolve_tool", "returns"]


def resolve_tool(node: Node, *, trust: bool, flow_name: str = "flow") -> Callable[..., Any]:
    """The callable a tool node runs; raises ``TrustError`` or ``FlowError`` with the reason."""
    if node.fn is not None:
        return node.fn
    ref = node.config["tool"]
    if not trust:
        return safe_tool_for(ref, where=f"flow '{flow_name}', node '{node.name}'")
    module_name, _, attr_path = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FlowError(
            f"flow '{flow_name}', node '{node.name}': cannot import tool module '{module_name}': {exc}"
        ) from None
    except Exception as exc:  # the module's own code raised while importing
        raise FlowError(
            f"flow '{flow_name}', node '{node.name}': importing '{module_name}' raised "
            f"{type(exc).__name__}: {exc}"
        ) from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise FlowError(
                f"flow '{flow_name}', node '{node.name}': module '{module_name}' has no "
                f"attribute '{attr_path}'"
            ) from None
    if not callable(target):
        raise FlowError(f"flow '{flow_name}', node '{node.name}': '{ref}' is not callable")
    return target


def returns(port: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adapt a function returning one value into a tool returning ``{port: value}``.

    >>> @returns("text")
    ... def shout(text: str) -> str:
    ...     return text.upper()
    >>> shout(text="hi")
    {'text': 'HI'}
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(**kwargs: Any) -> dict[str, Any]:
                return {port: await fn(**kwargs)}

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> dict[str, Any]:
            return {port: fn(**kwargs)}

        return wrapper

    return wrap
