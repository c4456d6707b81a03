"""Rails while decoding: the model can only write answers that satisfy the rails.

Between the models and the flow layer. ``DecodeRails`` compiles a node's ``enforce: decode``
rails once (Z3; each rail enforced by ``mask`` or, when it cannot be, ``reject``);
``RailsConstraint`` binds them to one request's known values and narrows the JSON-schema
grammar's token mask step by step. Docs: docs/rails.md, "Rails while decoding".
"""

from .constraint import RailsConstraint, Step
from .prefix import Interval, Partial, number_prefix_ok, scan
from .requests import request_rails, type_of_schema
from .solver import DecodeConflict, DecodeRails, Field, answer_fields

__all__ = [
    "DecodeConflict",
    "DecodeRails",
    "Field",
    "Interval",
    "Partial",
    "RailsConstraint",
    "Step",
    "answer_fields",
    "number_prefix_ok",
    "request_rails",
    "scan",
    "type_of_schema",
]
