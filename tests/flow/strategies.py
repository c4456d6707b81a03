"""Hypothesis strategies shared by the type and flow tests: random types, values and flows."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from workbench.flow import Flow, Node, PortRef, RailSpec, Wire
from workbench.flow.model import ENFORCE_MODES
from workbench.types import Bool, Enum, Float, Int, List, Record, Str, Type

# Names that YAML 1.1 or 1.2 would read as something other than a string if written bare.
TRICKY_NAMES = ("null", "true", "false", "True", "NULL", "on", "off", "yes", "no", "y", "n", "inf", "nan")
RESERVED = {"str", "int", "float", "bool", "enum", "list", "max_items"}

NAMES = ("a", "b", "c", "x", "y", "z", "qty", "price", "side", "text", "n1", "n_2", "item", "next", "result")
identifiers = st.sampled_from(NAMES + TRICKY_NAMES)
assert not RESERVED & set(NAMES + TRICKY_NAMES)

PATTERNS = ("[A-Z]{1,5}", "a+b?", "[0-9]+(\\.[0-9]+)?", "x|yz", ".*@.*", "[a-c]*")

finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
# "+ 0.0" turns -0.0 into 0.0: hypothesis orders -0.0 below 0.0, so bounds 0.0..-0.0 would be empty.
small_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3) + 0.0)


@st.composite
def int_types(draw: st.DrawFn) -> Int:
    ge = draw(st.none() | st.integers(-50, 50))
    le = draw(st.none() | st.integers(-50, 50))
    if ge is not None and le is not None and le < ge:
        ge, le = le, ge
    return Int(ge=ge, le=le)


@st.composite
def float_types(draw: st.DrawFn) -> Float:
    bounds = {key: draw(st.none() | small_floats) for key in ("ge", "gt", "le", "lt")}
    return Float(**bounds)


str_types = st.builds(
    Str, max_len=st.none() | st.integers(0, 12), pattern=st.none() | st.sampled_from(PATTERNS)
)
enum_types = st.lists(
    st.text(string.ascii_letters + "-_ ", min_size=1, max_size=6), min_size=1, max_size=4, unique=True
).map(lambda values: Enum(*values))
leaf_types = st.one_of(int_types(), float_types(), str_types, enum_types, st.just(Bool()))


def _extend(children: st.SearchStrategy[Type]) -> st.SearchStrategy[Type]:
    lists = st.builds(List, children, max_items=st.none() | st.integers(0, 4))
    records = st.dictionaries(identifiers, children, min_size=1, max_size=4).map(lambda f: Record(None, f))
    return lists | records


types = st.recursive(leaf_types, _extend, max_leaves=8)


def named_types(names: list[str]) -> st.SearchStrategy[dict[str, Type]]:
    """A ``types:`` section: each type may refer to the ones defined before it (by name)."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Type]:
        out: dict[str, Type] = {}
        for name in names:
            refs = list(out.values())
            shape = draw(st.integers(0, 3)) if refs else 0
            if shape == 0:
                typ = draw(types)
            elif shape == 1:
                typ = refs[draw(st.integers(0, len(refs) - 1))]
            elif shape == 2:
                typ = List(
                    refs[draw(st.integers(0, len(refs) - 1))], max_items=draw(st.none() | st.integers(0, 3))
                )
            else:
                keys = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
                typ = Record(None, {k: draw(any_type(refs)) for k in keys})
            out[name] = _with_name(typ, name)
        return out

    return build()


def any_type(named: list[Type]) -> st.SearchStrategy[Type]:
    """A random type, or one of the ``named`` types (which writes itself by name)."""
    if not named:
        return types
    return st.one_of(types, st.integers(0, len(named) - 1).map(named.__getitem__))


def _with_name(typ: Type, name: str) -> Type:
    import dataclasses

    if isinstance(typ, Enum):
        return Enum(*typ.values, name=name)
    if isinstance(typ, Record):
        return Record(name, dict(typ.fields))
    return dataclasses.replace(typ, name=name)


# -- values ----------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | small_floats | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


def values_for(typ: Type) -> st.SearchStrategy[Any]:
    """Values near ``typ``: mostly of the right shape, with bounds, lengths and fields perturbed."""
    if isinstance(typ, Bool):
        near: st.SearchStrategy[Any] = st.booleans() | st.integers(0, 1)
    elif isinstance(typ, Int):
        lo = typ.ge if typ.ge is not None else (typ.le if typ.le is not None else 0) - 20
        hi = typ.le if typ.le is not None else lo + 40
        near = st.integers(lo - 2, hi + 2) | st.integers(lo - 2, hi + 2).map(float) | st.floats(-30, 30)
    elif isinstance(typ, Float):
        bounds = [b for b in (typ.ge, typ.gt, typ.le, typ.lt) if b is not None]
        near = st.sampled_from(bounds) | small_floats | st.integers(-5, 5) if bounds else small_floats
    elif isinstance(typ, Str):
        near = st.text(max_size=(typ.max_len or 6) + 2)
        if typ.pattern is not None:
            near = near | st.from_regex(typ.pattern, fullmatch=True).filter(lambda s: len(s) < 20)
    elif isinstance(typ, Enum):
        near = st.sampled_from(typ.values) | st.text(max_size=3)
    elif isinstance(typ, List):
        size = (typ.max_items if typ.max_items is not None else 3) + 1
        near = st.lists(values_for(typ.item), max_size=size)
    else:
        assert isinstance(typ, Record)
        near = _record_values(typ)
    return near | json_scalars


def valid_values(typ: Type) -> st.SearchStrategy[Any]:
    """Values that fit ``typ`` (where its bounds leave room for one)."""
    if isinstance(typ, Bool):
        return st.booleans()
    if isinstance(typ, Int):
        lo = typ.ge if typ.ge is not None else -1000
        return st.integers(lo, typ.le if typ.le is not None else max(lo, 0) + 1000)
    if isinstance(typ, Float):
        lower = max(
            [(b, excl) for b, excl in ((typ.ge, False), (typ.gt, True)) if b is not None], default=None
        )
        upper = min(
            [(b, not excl) for b, excl in ((typ.le, False), (typ.lt, True)) if b is not None], default=None
        )
        lo, lo_excl = lower if lower else (None, False)
        hi, hi_excl = (upper[0], not upper[1]) if upper else (None, False)
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_excl or hi_excl))):
            return values_for(typ)  # no value fits: near ones only
        return st.floats(
            lo, hi, exclude_min=lo_excl, exclude_max=hi_excl, allow_nan=False, allow_infinity=False
        )
    if isinstance(typ, Str):
        if typ.pattern is None:
            return st.text(max_size=typ.max_len if typ.max_len is not None else 8)
        found = st.from_regex(typ.pattern, fullmatch=True)
        return found if typ.max_len is None else found.map(lambda text: text[: typ.max_len])
    if isinstance(typ, Enum):
        return st.sampled_from(typ.values)
    if isinstance(typ, List):
        return st.lists(valid_values(typ.item), max_size=3 if typ.max_items is None else typ.max_items)
    assert isinstance(typ, Record)
    return st.fixed_dictionaries({key: valid_values(sub) for key, sub in typ.fields})


@st.composite
def _record_values(draw: st.DrawFn, typ: Record) -> dict[str, Any]:
    out = {key: draw(values_for(sub)) for key, sub in typ.fields}
    if draw(st.integers(0, 9)) == 0:
        out.pop(draw(st.sampled_from([k for k, _ in typ.fields])))
    if draw(st.integers(0, 9)) == 0:
        out[draw(identifiers)] = 1
    return out


# -- flows -----------------------------------------------------------------------------------

TOOL_REFS = (
    "workbench.examples.support:redact",
    "workbench.examples.support:classify",
    "workbench.examples.trading:risk_check",
    "somewhere.else:fn",
)
prompts = st.one_of(
    st.text(max_size=40),
    st.lists(st.text(string.ascii_letters + " {}#:-'\"", max_size=20), min_size=2, max_size=4).map("\n".join),
    st.lists(st.text(max_size=10), min_size=1, max_size=3).map(lambda ls: "\n".join(ls) + "\n"),
)
constant_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | finite_floats
    | st.text(max_size=12)
    | st.sampled_from(["2020-01-01", "1e3", "on", "no", "~", "0x1F", "1:30", "null", "- x", "#c"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def port_maps(draw: st.DrawFn, named: list[Type]) -> dict[str, Type]:
    keys = draw(st.lists(identifiers, max_size=3, unique=True))
    return {k: draw(any_type(named)) for k in keys}


@st.composite
def nodes(draw: st.DrawFn, name: str, named: list[Type], depth: int) -> Node:
    kind = draw(st.sampled_from(["tool", "tool", "llm", "flow"] if depth > 0 else ["tool", "llm"]))
    inputs, outputs = draw(port_maps(named)), draw(port_maps(named))
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["guarantees"] = draw(st.lists(st.text(min_size=1, max_size=15), max_size=2))
    if draw(st.booleans()):
        extra["timeout"] = draw(st.floats(0.001, 100) | st.integers(1, 100))
    extra["retries"] = draw(st.integers(0, 3))
    if kind == "tool":
        node = Node.tool(name, draw(st.sampled_from(TOOL_REFS)), inputs=inputs, outputs=outputs, **extra)
        if draw(st.booleans()):
            node.config["blocking"] = draw(st.booleans())
        return node
    if kind == "llm":
        model = draw(st.sampled_from(["default", {"local": "/models/x"}, "mine"]))
        node = Node.llm(name, draw(prompts), inputs=inputs, outputs=outputs, model=model, **extra)
        if draw(st.booleans()):
            node.config["temperature"] = draw(st.floats(0, 2))
        if draw(st.booleans()):
            node.config["system"] = draw(prompts)
        return node
    inner = draw(flows(depth=depth - 1))
    return inner.as_node(name)


port_refs = st.builds(PortRef, st.none() | identifiers, identifiers)


@st.composite
def rails(draw: st.DrawFn, name: str) -> RailSpec:
    on = draw(port_refs)
    enforce = draw(st.sampled_from(ENFORCE_MODES))
    attempts = draw(st.none() | st.integers(1, 5))
    if draw(st.booleans()):
        return RailSpec(name, on, draw(st.text(min_size=1, max_size=30).filter(str.strip)), enforce, attempts)
    use = draw(st.sampled_from(["finance.notional_cap", "pii.no_email"]))
    args = draw(st.dictionaries(identifiers, st.integers() | st.text(max_size=5), max_size=2))
    return RailSpec(name, on, None, enforce, attempts, use, args)


@st.composite
def flows(draw: st.DrawFn, depth: int = 1) -> Flow:
    """A random flow that loads and saves (not necessarily valid: wires may point anywhere)."""
    type_names = draw(
        st.lists(st.sampled_from(("Order", "Side", "T", "Null", "A_b")), unique=True, max_size=3)
    )
    named = draw(named_types(type_names))
    pool = list(named.values())
    flow = Flow(
        draw(st.text(min_size=1, max_size=12).filter(str.strip)),
        inputs=draw(port_maps(pool)),
        outputs=draw(port_maps(pool)),
        types=named,
        constants=draw(st.dictionaries(identifiers, constant_values, max_size=3)),
        models=draw(
            st.dictionaries(
                identifiers,
                st.just("default") | st.fixed_dictionaries({"local": st.text(min_size=1, max_size=8)}),
                max_size=2,
            )
        ),
        use=draw(st.lists(st.sampled_from(["pii", "finance"]), unique=True, max_size=2)),
        description=draw(st.none() | st.text(max_size=40)),
    )
    for name in draw(st.lists(identifiers, unique=True, max_size=4)):
        flow.add(draw(nodes(name, pool, depth)))
    flow.wires = draw(st.lists(st.builds(Wire, port_refs, port_refs), max_size=6))
    for name in draw(st.lists(identifiers, unique=True, max_size=3)):
        flow.rails[name] = draw(rails(name))
    return flow
