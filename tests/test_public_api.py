"""The public surface of the foundation modules, pinned: a change here is a deliberate one."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "workbench.types": [
        "PRIMITIVE_NAMES",
        "Bool",
        "Enum",
        "Float",
        "Int",
        "List",
        "Record",
        "Str",
        "Type",
        "as_type",
        "parse_named_types",
        "parse_type",
    ],
    "workbench.errors": [
        "FlowError",
        "FlowSyntaxError",
        "FlowValidationError",
        "ModelUnavailable",
        "NodeError",
        "NodeTimeout",
        "RailError",
        "RailViolation",
        "RunError",
        "TrustError",
        "TypeSpecError",
        "UsageError",
        "ValueValidationError",
        "WorkbenchError",
    ],
    "workbench.spans": [
        "MemoryTracer",
        "NoopTracer",
        "Span",
        "SpanEvent",
        "Tracer",
        "new_span_id",
        "new_trace_id",
    ],
    "workbench.flow": [
        "KINDS",
        "AgentTool",
        "Flow",
        "KindSpec",
        "Node",
        "PortRef",
        "RailSpec",
        "Wire",
        "dump",
        "dumps",
        "flow_hash",
        "identity",
        "load",
        "loads",
        "parallel",
        "problems",
        "register_kind",
        "save",
        "sequence",
        "validate",
    ],
    "workbench.runtime": [
        "RUNNERS",
        "SKIPPED",
        "AgentRunner",
        "Approve",
        "Deny",
        "Edit",
        "Executor",
        "RailRecord",
        "RunResult",
        "Runner",
        "aexecute",
        "execute",
        "register_runner",
        "returns",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned_and_importable(module):
    mod = importlib.import_module(module)
    assert set(mod.__all__) == set(PUBLIC[module])
    assert len(mod.__all__) == len(set(mod.__all__))
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is listed but missing"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_callables_have_docstrings(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"{module}.{name} has no docstring"
