"""Rail packs: reusable, versioned sets of rail templates (``use: [finance, pii]``).

A template is rail text whose free names are its parameters. Instantiating it renames
parameters in the syntax tree (never by string replacement) and gives ordinary rail
text in the flow's own names, which then parses and type-checks like any rail:

- a parameter left unbound keeps its name, so it resolves to the flow's port, input or
  constant of that name (a flow with ``constants: {max_notional: 10000}`` and an
  ``order`` port needs no arguments for ``finance.notional_cap``);
- a ``str`` argument is a rail expression in the flow's names (``"proposed"``,
  ``"RESTRICTED"``, ``"cash * 0.5"``); any other argument (number, bool, list) is a
  literal value.

``applies_to`` tells the flow layer where a template goes: ``"port"`` (where the flow
file puts it) or ``"each-str-leaf"`` (once per string field of every flow output,
parameter ``text`` bound to that field: the pii pack). See docs/rails.md.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.errors import UsageError

from .parser import Scope
from .rail import Rail, parse_rail

__all__ = ["Pack", "Param", "RailTemplate", "available_packs", "load_pack", "register_pack"]


@dataclass(frozen=True)
class Param:
    """A template parameter: ``value`` (something the rail reads: a port, a field, an
    input) or ``constant`` (a number or list the flow author sets)."""

    name: str
    kind: str
    expects: str
    doc: str = ""


@dataclass(frozen=True)
class RailTemplate:
    """One parameterised rail of a pack."""

    name: str
    text: str
    params: tuple[Param, ...]
    doc: str = ""
    applies_to: str = "port"

    def instantiate(self, args: Mapping[str, Any] | None = None) -> str:
        """Rail text with parameters replaced by ``args`` (see the module docstring)."""
        args = dict(args or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(args) - known)
        if unknown:
            raise UsageError(
                f"rail template '{self.name}' has no parameter {unknown[0]!r} (has: {sorted(known)})"
            )
        tree = ast.parse(self.text, mode="eval")
        replacements = {name: _as_ast(value, self.name, name) for name, value in args.items()}

        class Rename(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                return replacements.get(node.id, node)

        return ast.unparse(Rename().visit(tree))

    def parse(self, scope: Scope, args: Mapping[str, Any] | None = None, *, name: str | None = None) -> Rail:
        """Instantiate and parse in ``scope``; errors name the rail ``name``."""
        return parse_rail(self.instantiate(args), scope, name=name or self.name)


def _as_ast(value: Any, template: str, param: str) -> ast.expr:
    if isinstance(value, str):
        try:
            return ast.parse(value.strip(), mode="eval").body
        except SyntaxError as exc:
            raise UsageError(
                f"argument {param!r} of '{template}' is not a rail expression: {exc.msg}"
            ) from None
    if isinstance(value, bool | int | float):
        return ast.Constant(value)
    if isinstance(value, list | tuple):
        if not all(isinstance(v, bool | int | float | str) for v in value):
            raise UsageError(f"argument {param!r} of '{template}' must be a list of plain values")
        return ast.List([ast.Constant(v) for v in value], ast.Load())
    raise UsageError(f"argument {param!r} of '{template}' must be a rail expression, a number or a list")


@dataclass(frozen=True)
class Pack:
    """A named, versioned set of rail templates."""

    name: str
    version: int
    doc: str
    templates: tuple[RailTemplate, ...]

    def template(self, name: str) -> RailTemplate:
        """The template called ``name``."""
        for t in self.templates:
            if t.name == name:
                return t
        raise UsageError(f"pack '{self.name}' has no rail {name!r} (has: {[t.name for t in self.templates]})")

    def rails(self, scope: Scope, args: Mapping[str, Mapping[str, Any]] | None = None) -> list[Rail]:
        """Every ``port`` template parsed in ``scope``; ``args`` maps template name to its
        arguments. Rails are named ``pack.template``."""
        args = dict(args or {})
        unknown = sorted(set(args) - {t.name for t in self.templates})
        if unknown:
            raise UsageError(f"pack '{self.name}' has no rail {unknown[0]!r}")
        return [
            t.parse(scope, args.get(t.name), name=f"{self.name}.{t.name}")
            for t in self.templates
            if t.applies_to == "port"
        ]


_ORDER = "a record with qty and price"
_FINANCE = Pack(
    "finance",
    1,
    "Trading limits: notional cap, position limit, restricted list, blackout window.",
    (
        RailTemplate(
            "notional_cap",
            "order.qty * order.price <= max_notional",
            (Param("order", "value", _ORDER), Param("max_notional", "constant", "number")),
            "The order's notional (quantity times price) stays within a cap.",
        ),
        RailTemplate(
            "position_limit",
            "implies(order.side == 'buy', position + order.qty <= max_position)"
            " and implies(order.side == 'sell', position - order.qty >= -max_position)",
            (
                Param("order", "value", "a record with side (enum with buy, sell) and qty"),
                Param("position", "value", "number: the current signed position"),
                Param("max_position", "constant", "number"),
            ),
            "The position after the order stays within +/- max_position.",
        ),
        RailTemplate(
            "restricted_list",
            "order.ticker not in restricted",
            (Param("order", "value", "a record with ticker"), Param("restricted", "constant", "list of str")),
            "No order in a restricted ticker.",
        ),
        RailTemplate(
            "blackout",
            "order.qty == 0 or now < blackout_start or now >= blackout_end",
            (
                Param("order", "value", "a record with qty"),
                Param("now", "value", "number: the time input (e.g. epoch seconds)"),
                Param("blackout_start", "constant", "number, same unit as now"),
                Param("blackout_end", "constant", "number, same unit as now (exclusive)"),
            ),
            "No trading (qty must be 0) while blackout_start <= now < blackout_end.",
        ),
    ),
)
_TEXT = (Param("text", "value", "str: one string field"),)
_PII = Pack(
    "pii",
    1,
    "No personal data in string outputs: e-mail, phone, payment card (Luhn), IBAN (mod 97).",
    (
        RailTemplate("no_email", "not contains_email(text)", _TEXT, "No e-mail address.", "each-str-leaf"),
        RailTemplate("no_phone", "not contains_phone(text)", _TEXT, "No phone number.", "each-str-leaf"),
        RailTemplate("no_card", "not luhn_card(text)", _TEXT, "No Luhn-valid card number.", "each-str-leaf"),
        RailTemplate("no_iban", "not contains_iban(text)", _TEXT, "No valid IBAN.", "each-str-leaf"),
    ),
)
_USAGE = Param("usage", "value", "a record with input_tokens and output_tokens (ints)")
_BUDGET = Pack(
    "budget",
    1,
    "Token and cost budgets over a usage record.",
    (
        RailTemplate(
            "token_budget",
            "usage.input_tokens + usage.output_tokens <= max_tokens",
            (_USAGE, Param("max_tokens", "constant", "int")),
            "Total tokens stay within max_tokens.",
        ),
        RailTemplate(
            "cost_budget",
            "usage.input_tokens * input_price + usage.output_tokens * output_price <= max_cost",
            (
                _USAGE,
                Param("input_price", "constant", "number: cost per input token"),
                Param("output_price", "constant", "number: cost per output token"),
                Param("max_cost", "constant", "number"),
            ),
            "The run's cost stays within max_cost.",
        ),
    ),
)

_REGISTRY: dict[str, dict[int, Pack]] = {}


def register_pack(pack: Pack) -> None:
    """Make ``pack`` loadable by name (a name and version may be registered once)."""
    versions = _REGISTRY.setdefault(pack.name, {})
    if pack.version in versions:
        raise UsageError(f"pack {pack.name}@{pack.version} is already registered")
    versions[pack.version] = pack


for _pack in (_FINANCE, _PII, _BUDGET):
    register_pack(_pack)


def available_packs() -> list[str]:
    """Every registered pack as ``name@version``."""
    return sorted(f"{n}@{v}" for n, vs in _REGISTRY.items() for v in vs)


def load_pack(name: str, version: int | None = None) -> Pack:
    """The pack ``name`` (``"finance"`` or ``"finance@1"``); latest version by default."""
    if "@" in name:
        name, _, ver = name.partition("@")
        if not ver.isdigit():
            raise UsageError(f"pack version must be a number, got {ver!r}")
        version = int(ver)
    versions = _REGISTRY.get(name)
    if not versions:
        raise UsageError(f"no rail pack {name!r} (available: {', '.join(available_packs())})")
    if version is None:
        return versions[max(versions)]
    if version not in versions:
        raise UsageError(f"rail pack {name!r} has no version {version} (has: {sorted(versions)})")
    return versions[version]
