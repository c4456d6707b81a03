"""Model backends behind one ``Model`` protocol (local runtime, OpenAI-compatible client)."""

from workbench.models.base import (
    Constraint,
    ConstraintState,
    Generation,
    GenerationRequest,
    Model,
    TokenEvent,
)
from workbench.models.registry import register_backend, resolve_model, spec_kind

__all__ = [
    "Constraint",
    "ConstraintState",
    "Generation",
    "GenerationRequest",
    "Model",
    "TokenEvent",
    "register_backend",
    "resolve_model",
    "spec_kind",
]
