"""The value types shared by every layer (docs/architecture.md, "Types": a stable format).

One small type language: ``Str``, ``Int``, ``Float``, ``Bool``, ``Enum``, ``List`` and
``Record``. Flows declare ports with it, rails map it to Z3 sorts, decoding turns it into
grammars, the app colours ports by it and ``to_json_schema`` exports it for
OpenAI-style ``response_format``.

Types are frozen dataclasses, so they hash and compare structurally. The optional
``name`` (the name a flow's ``types:`` section gave it) is not part of equality: two
records with the same fields are the same type whatever they are called.

    >>> Order = Record("Order", side=Enum("buy", "sell"), qty=Int(ge=0))
    >>> Order.validate({"side": "buy", "qty": 1.5}, "order")
    Traceback (most recent call last):
    ...
    workbench.errors.ValueValidationError: order.qty: 1.5 is not an int
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import TypeSpecError, ValueValidationError

__all__ = [
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
]

PRIMITIVE_NAMES = ("str", "int", "float", "bool")
_CONSTRUCTOR_KEYS = frozenset({"str", "int", "float", "bool", "enum", "list"})


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The one meaning of a ``Str`` pattern and of a rail's ``matches``: Python's ``re``
    with ``re.ASCII`` (``\\d`` is ``[0-9]``, ``\\w`` is ``[A-Za-z0-9_]``, ``\\s`` is ASCII
    whitespace, ``(?i)`` folds ASCII letters only), used as a full match. The prover
    translates exactly this. Raises ``re.error`` for any pattern ``re`` refuses."""
    try:
        return re.compile(pattern, re.ASCII)
    except ValueError as exc:  # "(?u)" asks for Unicode classes
        raise re.error(f"{exc} (patterns always use ASCII classes)", pattern) from None
    except (RecursionError, OverflowError) as exc:
        raise re.error(str(exc), pattern) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Type:
    """Base of all value types."""

    name: str | None = field(default=None, compare=False, kw_only=True)

    kind: str = field(default="", init=False, repr=False, compare=False)

    def validate(self, value: Any, path: str = "value") -> Any:
        """Return ``value`` (normalised) if it fits, else raise ``ValueValidationError``."""
        raise NotImplementedError

    def to_json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) describing exactly the values ``validate`` accepts."""
        raise NotImplementedError

    def to_spec(self, *, expand: bool = False) -> Any:
        """The YAML/JSON form of this type; a named type is written by name unless ``expand``."""
        if self.name is not None and not expand:
            return self.name
        return self._spec()

    def _spec(self) -> Any:
        raise NotImplementedError

    def accepts(self, source: Type) -> str | None:
        """Can a value of type ``source`` travel on a wire into this type?

        Returns ``None`` when it can, else a short reason. Kinds must agree (an ``int``
        may flow into a ``float``); refinements (bounds, patterns, lengths) of the target
        are not required of the source: the runtime validates every value against the
        receiving port's type, so they hold there all the same.
        """
        if type(source) is not type(self):
            if isinstance(self, Float) and isinstance(source, Int):
                return None
            return f"{source.kind} is not {self.kind}"
        return self._accepts_same_kind(source)

    def _accepts_same_kind(self, source: Type) -> str | None:
        return None

    def describe(self) -> str:
        """A compact one-line rendering, used in error messages."""
        if self.name is not None:
            return self.name
        spec = self._spec()
        return spec if isinstance(spec, str) else _render_flow(spec)


def _render_flow(spec: Any) -> str:
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k}: {_render_flow(v)}" for k, v in spec.items()) + "}"
    if isinstance(spec, list):
        return "[" + ", ".join(_render_flow(v) for v in spec) + "]"
    return str(spec)


def _bounds_spec(kind: str, bounds: dict[str, Any]) -> Any:
    present = {k: v for k, v in bounds.items() if v is not None}
    return {kind: present} if present else kind


@dataclass(frozen=True)
class Str(Type):
    """A string, optionally with a maximum length and a full-match regex ``pattern``
    (ASCII classes: see ``compile_pattern``)."""

    max_len: int | None = None
    pattern: str | None = None
    kind: str = field(default="str", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_len is not None and (not _is_int(self.max_len) or self.max_len < 0):
            raise TypeSpecError(f"str max_len must be a non-negative integer, got {_short(self.max_len)}")
        if self.pattern is not None:
            if not isinstance(self.pattern, str):
                raise TypeSpecError(f"str pattern must be a string, got {_short(self.pattern)}")
            try:
                compile_pattern(self.pattern)
            except re.error as exc:
                raise TypeSpecError(f"str pattern {self.pattern!r} is not a valid regex: {exc}") from None

    def validate(self, value: Any, path: str = "value") -> Any:
        if not isinstance(value, str):
            raise ValueValidationError(path, f"{_short(value)} is not a str")
        if self.max_len is not None and len(value) > self.max_len:
            raise ValueValidationError(path, f"{_short(value)} is longer than max_len {self.max_len}")
        if self.pattern is not None and compile_pattern(self.pattern).fullmatch(value) is None:
            raise ValueValidationError(path, f"{_short(value)} does not match pattern {self.pattern!r}")
        return value

    def to_json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.max_len is not None:
            schema["maxLength"] = self.max_len
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        return schema

    def _spec(self) -> Any:
        return _bounds_spec("str", {"max_len": self.max_len, "pattern": self.pattern})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


@dataclass(frozen=True)
class Int(Type):
    """An integer with optional inclusive bounds ``ge`` and ``le``."""

    ge: int | None = None
    le: int | None = None
    kind: str = field(default="int", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("ge", "le"):
            bound = getattr(self, key)
            if bound is not None and not _is_int(bound):
                raise TypeSpecError(f"int bound {key} must be an integer, got {_short(bound)}")

    def validate(self, value: Any, path: str = "value") -> Any:
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)  # JSON writers often emit 3.0 for 3
        if not _is_int(value):
            raise ValueValidationError(path, f"{_short(value)} is not an int")
        if self.ge is not None and value < self.ge:
            raise ValueValidationError(path, f"{value} is less than the minimum {self.ge}")
        if self.le is not None and value > self.le:
            raise ValueValidationError(path, f"{value} is greater than the maximum {self.le}")
        return value

    def to_json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.ge is not None:
            schema["minimum"] = self.ge
        if self.le is not None:
            schema["maximum"] = self.le
        return schema

    def _spec(self) -> Any:
        return _bounds_spec("int", {"ge": self.ge, "le": self.le})


@dataclass(frozen=True)
class Float(Type):
    """A finite real number with optional bounds (``ge``/``gt`` below, ``le``/``lt`` above).

    Rails reason about floats with exact rational semantics (Z3 ``Real``).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    kind: str = field(default="float", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("ge", "gt", "le", "lt"):
            bound = getattr(self, key)
            if bound is not None and (not _is_number(bound) or not _is_finite(bound)):
                raise TypeSpecError(f"float bound {key} must be a finite number, got {_short(bound)}")

    def validate(self, value: Any, path: str = "value") -> Any:
        if not _is_number(value):
            raise ValueValidationError(path, f"{_short(value)} is not a float")
        if not _is_finite(value):
            raise ValueValidationError(path, f"{_short(value)} is not a finite number")
        value = float(value)
        checks = (
            (self.ge, lambda b: value >= b, "less than the minimum"),
            (self.gt, lambda b: value > b, "not greater than"),
            (self.le, lambda b: value <= b, "greater than the maximum"),
            (self.lt, lambda b: value < b, "not less than"),
        )
        for bound, ok, words in checks:
            if bound is not None and not ok(bound):
                raise ValueValidationError(path, f"{value} is {words} {bound}")
        return value

    def to_json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        names = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
        for key, word in names.items():
            if getattr(self, key) is not None:
                schema[word] = getattr(self, key)
        return schema

    def _spec(self) -> Any:
        return _bounds_spec("float", {"ge": self.ge, "gt": self.gt, "le": self.le, "lt": self.lt})


@dataclass(frozen=True)
class Bool(Type):
    """``true`` or ``false``."""

    kind: str = field(default="bool", init=False, repr=False, compare=False)

    def validate(self, value: Any, path: str = "value") -> Any:
        if not isinstance(value, bool):
            raise ValueValidationError(path, f"{_short(value)} is not a bool")
        return value

    def to_json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def _spec(self) -> Any:
        return "bool"


@dataclass(frozen=True, init=False)
class Enum(Type):
    """One of a fixed, ordered set of strings: ``Enum("buy", "sell", "hold")``."""

    values: tuple[str, ...] = ()
    kind: str = field(default="enum", init=False, repr=False, compare=False)

    def __init__(self, *values: str, name: str | None = None) -> None:
        if len(values) == 1 and isinstance(values[0], list | tuple):
            values = tuple(values[0])
        if not values:
            raise TypeSpecError("enum needs at least one value")
        for value in values:
            if not isinstance(value, str) or not value:
                raise TypeSpecError(f"enum values must be non-empty strings, got {_short(value)}")
        if len(set(values)) != len(values):
            raise TypeSpecError(f"enum values must be distinct, got {list(values)}")
        object.__setattr__(self, "values", tuple(values))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", "enum")

    def validate(self, value: Any, path: str = "value") -> Any:
        if value not in self.values or not isinstance(value, str):
            raise ValueValidationError(path, f"{_short(value)} is not one of {list(self.values)}")
        return value

    def to_json_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}

    def _spec(self) -> Any:
        return {"enum": list(self.values)}

    def _accepts_same_kind(self, source: Type) -> str | None:
        assert isinstance(source, Enum)
        extra = [v for v in source.values if v not in self.values]
        return f"values {extra} are not in {list(self.values)}" if extra else None


@dataclass(frozen=True)
class List(Type):
    """A list of ``item`` values, at most ``max_items`` long when given."""

    item: Type = field(default_factory=lambda: Str())
    max_items: int | None = None
    kind: str = field(default="list", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.item, Type):
            raise TypeSpecError(f"list item must be a type, got {_short(self.item)}")
        if self.max_items is not None and (not _is_int(self.max_items) or self.max_items < 0):
            raise TypeSpecError(
                f"list max_items must be a non-negative integer, got {_short(self.max_items)}"
            )

    def validate(self, value: Any, path: str = "value") -> Any:
        if not isinstance(value, list | tuple):
            raise ValueValidationError(path, f"{_short(value)} is not a list")
        if self.max_items is not None and len(value) > self.max_items:
            raise ValueValidationError(path, f"has {len(value)} items, more than max_items {self.max_items}")
        return [self.item.validate(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def to_json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.item.to_json_schema()}
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema

    def _spec(self) -> Any:
        spec: dict[str, Any] = {"list": self.item.to_spec()}
        if self.max_items is not None:
            spec["max_items"] = self.max_items
        return spec

    def _accepts_same_kind(self, source: Type) -> str | None:
        assert isinstance(source, List)
        reason = self.item.accepts(source.item)
        return None if reason is None else f"list items: {reason}"


@dataclass(frozen=True, init=False)
class Record(Type):
    """A mapping of named fields, in order: ``Record("Order", side=Side, qty=Int(ge=0))``.

    Field order is significant: decoding generates fields in this order.
    """

    fields: tuple[tuple[str, Type], ...] = ()
    kind: str = field(default="record", init=False, repr=False, compare=False)

    def __init__(
        self, name: str | None = None, /, _fields: Mapping[str, Type] | None = None, **fields: Type
    ) -> None:
        items = list((_fields or {}).items()) + list(fields.items())
        if not items:
            raise TypeSpecError("a record needs at least one field")
        seen: set[str] = set()
        for key, typ in items:
            if not isinstance(key, str) or not key.isidentifier():
                raise TypeSpecError(f"record field names must be identifiers, got {_short(key)}")
            if key in seen:
                raise TypeSpecError(f"record field {key!r} is declared twice")
            seen.add(key)
            if not isinstance(typ, Type):
                raise TypeSpecError(f"record field {key!r} must have a type, got {_short(typ)}")
        object.__setattr__(self, "fields", tuple(items))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", "record")

    @property
    def field_types(self) -> dict[str, Type]:
        """The fields as an ordered ``{name: type}`` dict."""
        return dict(self.fields)

    def validate(self, value: Any, path: str = "value") -> Any:
        if not isinstance(value, Mapping):
            raise ValueValidationError(path, f"{_short(value)} is not a record (expected a mapping)")
        out: dict[str, Any] = {}
        for key, typ in self.fields:
            if key not in value:
                raise ValueValidationError(f"{path}.{key}", "missing")
            out[key] = typ.validate(value[key], f"{path}.{key}")
        extra = [k for k in value if k not in out]
        if extra:
            raise ValueValidationError(f"{path}.{extra[0]}", "unexpected field")
        return out

    def to_json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {k: t.to_json_schema() for k, t in self.fields},
            "required": [k for k, _ in self.fields],
            "additionalProperties": False,
        }

    def _spec(self) -> Any:
        return {k: t.to_spec() for k, t in self.fields}

    def _accepts_same_kind(self, source: Type) -> str | None:
        assert isinstance(source, Record)
        mine, theirs = [k for k, _ in self.fields], [k for k, _ in source.fields]
        if mine != theirs:
            return f"fields {theirs} are not {mine}"
        for (key, t), (_, s) in zip(self.fields, source.fields, strict=True):
            reason = t.accepts(s)
            if reason is not None:
                return f"field {key}: {reason}"
        return None


_PY_TYPES: dict[type, Type] = {str: Str(), int: Int(), float: Float(), bool: Bool()}


def as_type(value: Any, named: Mapping[str, Type] | None = None) -> Type:
    """Coerce a ``Type``, a Python builtin (``int``, ``str``...) or a YAML spec to a ``Type``."""
    if isinstance(value, Type):
        return value
    if isinstance(value, type) and value in _PY_TYPES:
        return _PY_TYPES[value]
    return parse_type(value, named)


_BOUND_KEYS = {"str": ("max_len", "pattern"), "int": ("ge", "le"), "float": ("ge", "gt", "le", "lt")}
_CONSTRUCTORS = {"str": Str, "int": Int, "float": Float}


def parse_type(spec: Any, named: Mapping[str, Type] | None = None, where: str = "type") -> Type:
    """Parse a YAML type expression (docs/architecture.md, "Types"); ``named`` resolves type names.

    Forms: ``str``/``int``/``float``/``bool``, a name from ``named``, ``{str: {...}}``,
    ``{int: {...}}``, ``{float: {...}}``, ``{enum: [...]}``, ``{list: T, max_items: N}``,
    and any other mapping as a record of fields. A mapping whose only key is one of
    ``str int float bool enum`` (or ``list`` with ``max_items``) is that constructor.
    """
    named = named or {}
    if isinstance(spec, str):
        if spec == "bool":
            return Bool()
        if spec in _CONSTRUCTORS:
            return _CONSTRUCTORS[spec]()
        if spec in named:
            return named[spec]
        known = sorted(set(PRIMITIVE_NAMES) | set(named))
        raise TypeSpecError(f"{where}: unknown type name {spec!r} (known: {', '.join(known)})")
    if isinstance(spec, Mapping) and spec:
        keys = set(spec)
        if (len(keys) == 1 and keys <= _CONSTRUCTOR_KEYS - {"list"}) or (
            "list" in keys and keys <= {"list", "max_items"}
        ):
            return _parse_constructor(spec, named, where)
        fields = {}
        for key, sub in spec.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise TypeSpecError(f"{where}: record field names must be identifiers, got {_short(key)}")
            fields[key] = parse_type(sub, named, f"{where}.{key}")
        return Record(None, fields)
    raise TypeSpecError(f"{where}: {_short(spec)} is not a type expression")


def _parse_constructor(spec: Mapping[str, Any], named: Mapping[str, Type], where: str) -> Type:
    if "list" in spec:
        item = parse_type(spec["list"], named, f"{where}.list")
        try:
            return List(item, max_items=spec.get("max_items"))
        except TypeSpecError as exc:
            raise TypeSpecError(f"{where}: {exc}") from None
    ((key, arg),) = spec.items()
    if key == "enum":
        if not isinstance(arg, list):
            raise TypeSpecError(f"{where}: enum takes a list of strings, got {_short(arg)}")
        try:
            return Enum(*arg)
        except TypeSpecError as exc:
            raise TypeSpecError(f"{where}: {exc}") from None
    if key == "bool":
        if arg not in (None, {}):
            raise TypeSpecError(f"{where}: bool takes no options, got {_short(arg)}")
        return Bool()
    if arg is None:
        arg = {}
    if not isinstance(arg, Mapping):
        raise TypeSpecError(f"{where}: {key} options must be a mapping, got {_short(arg)}")
    unknown = [k for k in arg if k not in _BOUND_KEYS[key]]
    if unknown:
        raise TypeSpecError(
            f"{where}: unknown {key} option {unknown[0]!r} (allowed: {', '.join(_BOUND_KEYS[key])})"
        )
    try:
        return _CONSTRUCTORS[key](**arg)
    except TypeSpecError as exc:
        raise TypeSpecError(f"{where}: {exc}") from None


def parse_named_types(specs: Mapping[str, Any], where: str = "types") -> dict[str, Type]:
    """Parse a flow's ``types:`` section; names may refer to each other in any order."""
    if not isinstance(specs, Mapping):
        raise TypeSpecError(f"{where} must be a mapping of name to type, got {_short(specs)}")
    resolved: dict[str, Type] = {}
    visiting: list[str] = []

    def resolve(name: str) -> Type:
        if name in resolved:
            return resolved[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise TypeSpecError(f"{where}: recursive type definition {cycle}")
        visiting.append(name)
        for ref in _referenced_names(specs[name]):
            if ref in specs and ref not in PRIMITIVE_NAMES:
                resolve(ref)
        typ = parse_type(specs[name], resolved, f"{where}.{name}")
        visiting.pop()
        typ = _renamed(typ, name)
        resolved[name] = typ
        return typ

    for name in specs:
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeSpecError(f"{where}: type names must be identifiers, got {_short(name)}")
        if name in PRIMITIVE_NAMES or name in _CONSTRUCTOR_KEYS:
            raise TypeSpecError(f"{where}: {name!r} is a built-in type and cannot be redefined")
        resolve(name)
    return {name: resolved[name] for name in specs}


def _referenced_names(spec: Any) -> list[str]:
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, Mapping):
        if set(spec) <= {"list", "max_items"} and "list" in spec:
            return _referenced_names(spec["list"])
        if len(spec) == 1 and set(spec) <= _CONSTRUCTOR_KEYS:
            return []
        return [name for sub in spec.values() for name in _referenced_names(sub)]
    return []


def _renamed(typ: Type, name: str) -> Type:
    """A copy of ``typ`` carrying ``name`` (types are frozen)."""
    if isinstance(typ, Enum):
        return Enum(*typ.values, name=name)
    if isinstance(typ, Record):
        return Record(name, dict(typ.fields))
    import dataclasses

    return dataclasses.replace(typ, name=name)
