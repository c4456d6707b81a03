"""Rail text -> typed IR (docs/rails.md), with ``ast.parse(mode="eval")`` and nothing else.

No code object is ever built from rail text: the parser walks Python's syntax tree,
accepts only the constructs of the rail language and checks sorts as it goes, so every
mistake is reported with the rail's name and the column it starts at.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any, NoReturn

from workbench.types import Bool, Enum, Float, Int, List, Record, Str, Type

from . import ir
from .builtins import PREDICATES
from .errors import RailNameError, RailSortError, RailSyntaxError
from .ir import BOOL, INT, REAL, STR, Expr, Sort
from .regex import compile_regex

__all__ = ["MAX_DEPTH", "MAX_EXPONENT", "MAX_LENGTH", "Scope", "parse_ir", "sort_of_type"]

MAX_LENGTH = 20_000  # characters of rail text
MAX_DEPTH = 64  # nesting of the syntax tree; keeps both backends' recursion shallow
MAX_EXPONENT = 8  # ``x ** k`` for constant 0 <= k <= MAX_EXPONENT

_FUNCTIONS = ("abs", "implies", "len", "matches", "max", "min", *sorted(PREDICATES))
_METHODS = ("endswith", "startswith")
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_FORBIDDEN = {
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Subscript: "indexing",
    ast.IfExp: "a conditional expression (use implies)",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "':='",
    ast.Dict: "a dict",
    ast.Starred: "'*'",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}


def sort_of_type(typ: Type) -> Sort:
    """The rail sort of a value type (records give the ``record`` sort)."""
    if isinstance(typ, Bool):
        return BOOL
    if isinstance(typ, Int):
        return INT
    if isinstance(typ, Float):
        return REAL
    if isinstance(typ, Str):
        return STR
    if isinstance(typ, Enum):
        return Sort("enum", enum=typ)
    if isinstance(typ, List):
        return Sort("list", item=sort_of_type(typ.item))
    if isinstance(typ, Record):
        return Sort("record", record=typ)
    raise TypeError(f"no rail sort for {typ!r}")


class Scope:
    """What a rail may refer to: typed names (ports, flow inputs) and constants.

    Constants are plain values: bool, int, float, str, or a list of one of those.
    """

    def __init__(self, names: Mapping[str, Type], constants: Mapping[str, Any] | None = None) -> None:
        constants = dict(constants or {})
        for key, typ in names.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"scope name {key!r} is not an identifier")
            if not isinstance(typ, Type):
                raise TypeError(f"scope name {key!r} needs a workbench.types.Type, got {typ!r}")
        clash = sorted(set(names) & set(constants))
        if clash:
            raise ValueError(f"{clash[0]!r} is both a name and a constant")
        self.names: dict[str, Type] = dict(names)
        self.constants: dict[str, Any] = constants

    def __repr__(self) -> str:
        return f"Scope(names={sorted(self.names)}, constants={sorted(self.constants)})"

    def known(self) -> list[str]:
        """Every name a rail may use."""
        return sorted({*self.names, *self.constants})


def _const_sort(value: Any) -> tuple[Sort, Any] | None:
    """Sort and IR value of a constant, or None if rails cannot use it."""
    if isinstance(value, bool):
        return BOOL, value
    if isinstance(value, int):
        return INT, value
    if isinstance(value, float):
        return (REAL, ir.exact(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return STR, value
    if isinstance(value, list | tuple | frozenset | set):
        items = list(value)
        if isinstance(value, frozenset | set):
            items = sorted(items, key=repr)
        sorts = [_const_sort(v) for v in items]
        if any(s is None or s[0].kind == "list" for s in sorts):
            return None
        kinds = {s[0].kind for s in sorts if s is not None}
        if not kinds:
            return Sort("list", item=None), ()
        if kinds == {"int", "real"}:
            kinds = {"real"}
        if len(kinds) != 1:
            return None
        item = Sort(kinds.pop())
        return Sort("list", item=item), tuple(s[1] for s in sorts if s is not None)
    return None


def parse_ir(text: str, scope: Scope, name: str) -> tuple[Expr, frozenset[str]]:
    """Parse and sort-check ``text``: a boolean IR with ``Atom`` leaves, and the names
    of the constants it used (they are inlined in the IR)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            column = len(bytes(text)[: exc.start].decode("utf-8", "replace")) + 1
            raise RailSyntaxError("rail text is not valid UTF-8", rail=name, column=column) from None
    if not isinstance(text, str):
        raise RailSyntaxError(f"rail text must be a string, got {type(text).__name__}", rail=name)
    parser = _Parser(text, scope, name)
    expr = parser.parse()
    return expr, frozenset(parser.constants_used)


class _Parser:
    def __init__(self, text: str, scope: Scope, name: str) -> None:
        self.text, self.scope, self.name = text, scope, name
        self.constants_used: set[str] = set()
        self.offset = len(text) - len(text.lstrip())
        body = text[self.offset :]
        lines = body.split("\n")
        self.line_starts, pos = [], self.offset
        for line in lines:
            self.line_starts.append((pos, line))
            pos += len(line) + 1

    # -- positions --------------------------------------------------------------------
    def _char(self, lineno: int, col_bytes: int) -> int:
        start, line = self.line_starts[min(max(lineno, 1), len(self.line_starts)) - 1]
        return start + len(line.encode("utf-8")[:col_bytes].decode("utf-8", "replace"))

    def span(self, node: ast.expr) -> tuple[int, int]:
        start = self._char(node.lineno, node.col_offset)
        end = self._char(node.end_lineno or node.lineno, node.end_col_offset or node.col_offset)
        return start, end

    def fail(self, cls: type, where: ast.expr | tuple[int, int] | int, message: str) -> NoReturn:
        if isinstance(where, ast.expr):
            where = self.span(where)[0]
        elif isinstance(where, tuple):
            where = where[0]
        before = self.text[:where]
        line = before.count("\n") + 1
        column = where - (before.rfind("\n") + 1) + 1
        raise cls(message, rail=self.name, line=line, column=column)

    def src(self, span: tuple[int, int]) -> str:
        return self.text[span[0] : span[1]]

    # -- entry ------------------------------------------------------------------------
    def parse(self) -> Expr:
        if len(self.text) > MAX_LENGTH:
            self.fail(RailSyntaxError, 0, f"rail text is longer than {MAX_LENGTH} characters")
        if not self.text.strip():
            self.fail(RailSyntaxError, 0, "rail text is empty")
        if "\x00" in self.text:
            self.fail(RailSyntaxError, self.text.index("\x00"), "rail text contains a NUL character")
        try:
            with warnings.catch_warnings():  # "\\d" in a regex literal is not our concern
                warnings.simplefilter("ignore")
                tree = ast.parse(self.text[self.offset :], mode="eval")
        except SyntaxError as exc:
            if not exc.offset:  # Python points nowhere when the text ends too early: at its end
                self.fail(
                    RailSyntaxError,
                    len(self.text.rstrip()),
                    f"syntax error: the rail ends too early ({exc.msg})",
                )
            line = exc.lineno or 1
            col_bytes = max((exc.offset or 1) - 1, 0)
            try:
                pos = self._char(line, col_bytes)
            except Exception:
                pos = 0
            self.fail(RailSyntaxError, pos, f"syntax error: {exc.msg}")
        except (RecursionError, MemoryError):
            self.fail(RailSyntaxError, 0, "rail text is nested too deeply")
        except (ValueError, UnicodeError) as exc:
            self.fail(RailSyntaxError, 0, f"unreadable rail text: {exc}")
        try:
            expr = self.expr(tree.body, 0)
        except RecursionError:
            self.fail(RailSyntaxError, 0, "rail text is nested too deeply")
        if expr.sort != BOOL:
            self.fail(
                RailSortError, tree.body, f"a rail must be a condition (bool), this is {expr.sort.describe()}"
            )
        return self.atomize(expr)

    def atomize(self, expr: Expr) -> Expr:
        """Wrap the boolean leaves of the and/or/not/implies skeleton in ``Atom``."""
        if isinstance(expr, ir.BoolOp):
            return ir.BoolOp(expr.sort, expr.span, expr.op, tuple(self.atomize(a) for a in expr.args))
        if isinstance(expr, ir.Not):
            return ir.Not(expr.sort, expr.span, self.atomize(expr.arg))
        if isinstance(expr, ir.Implies):
            return ir.Implies(expr.sort, expr.span, self.atomize(expr.left), self.atomize(expr.right))
        partial = any(isinstance(n, ir.Arith) and n.op in ("/", "//", "%") for n in ir.walk(expr))
        return ir.Atom(BOOL, expr.span, expr, self.src(expr.span), partial)

    # -- expressions ------------------------------------------------------------------
    def expr(self, node: ast.expr, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            self.fail(RailSyntaxError, node, f"rail is nested more than {MAX_DEPTH} levels deep")
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name | ast.Attribute):
            return self.leaf(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node, d)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, d)
        if isinstance(node, ast.BoolOp):
            args = tuple(self.boolean(v, d) for v in node.values)
            return ir.BoolOp(BOOL, self.span(node), "and" if isinstance(node.op, ast.And) else "or", args)
        if isinstance(node, ast.Compare):
            return self.compare(node, d)
        if isinstance(node, ast.Call):
            return self.call(node, d)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            self.fail(RailSyntaxError, node, "a list literal is only allowed after 'in'")
        what = _FORBIDDEN.get(type(node), type(node).__name__)
        self.fail(RailSyntaxError, node, f"{what} is not allowed in a rail")

    def boolean(self, node: ast.expr, depth: int) -> Expr:
        expr = self.expr(node, depth)
        if expr.sort != BOOL:
            self.fail(
                RailSortError, node, f"{self.src(expr.span)!r} is {expr.sort.describe()}, not a condition"
            )
        return expr

    def numeric(self, node: ast.expr, depth: int, what: str) -> Expr:
        expr = self.expr(node, depth)
        if not expr.sort.numeric:
            self.fail(RailSortError, self._focus(node), f"{what} needs a number, {self._show(expr)}")
        return expr

    def _show(self, expr: Expr) -> str:
        return f"{self.src(expr.span)!r} is {expr.sort.describe()}"

    def _focus(self, node: ast.expr) -> ast.expr | tuple[int, int]:
        """Where to point for an operand: a field access points at the field name."""
        if isinstance(node, ast.Attribute):
            end = self.span(node)[1]
            return (end - len(node.attr), end)
        return node

    def constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(RailSyntaxError, node, "number literal is not finite")
        found = _const_sort(value) if isinstance(value, bool | int | float | str) else None
        if found is None:
            self.fail(RailSyntaxError, node, f"literal {type(value).__name__} is not allowed in a rail")
        sort, val = found
        return ir.Const(sort, self.span(node), val)

    def leaf(self, node: ast.Name | ast.Attribute) -> Expr:
        chain: list[ast.Attribute] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            chain.append(base)
            base = base.value
        for attr in chain:
            if attr.attr.startswith("_"):
                self.fail(RailNameError, self._focus(attr), f"attribute {attr.attr!r} is not allowed")
        if not isinstance(base, ast.Name):
            self.fail(RailSyntaxError, base, "field access needs a name on the left")
        root = base.id
        if root in self.scope.constants:
            self.constants_used.add(root)
            if chain:
                self.fail(RailSortError, self._focus(chain[-1]), f"constant {root!r} has no fields")
            found = _const_sort(self.scope.constants[root])
            if found is None:
                self.fail(RailSortError, base, f"constant {root!r} has a value rails cannot use")
            return ir.Const(found[0], self.span(base), found[1])
        if root not in self.scope.names:
            hint = difflib.get_close_matches(root, self.scope.known(), n=1)
            known = (
                f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(self.scope.known()) or 'none'}"
            )
            if root in _FUNCTIONS or root in ("True", "False"):
                known = "it is a function: call it"
            self.fail(RailNameError, base, f"unknown name {root!r} ({known})")
        typ = self.scope.names[root]
        fields: list[str] = []
        for attr in reversed(chain):
            if not isinstance(typ, Record):
                where = ".".join((root, *fields))
                self.fail(
                    RailSortError, self._focus(attr), f"{where!r} is {typ.describe()} and has no fields"
                )
            sub = typ.field_types.get(attr.attr)
            if sub is None:
                where = ".".join((root, *fields))
                names = ", ".join(typ.field_types)
                self.fail(
                    RailNameError,
                    self._focus(attr),
                    f"{where!r} has no field {attr.attr!r} (fields: {names})",
                )
            fields.append(attr.attr)
            typ = sub
        return ir.Var(sort_of_type(typ), self.span(node), root, tuple(fields), typ)

    def _no_record(self, expr: Expr, node: ast.expr) -> None:
        if expr.sort.kind == "record":
            self.fail(RailSortError, node, f"{self.src(expr.span)!r} is a record: use one of its fields")

    def binop(self, node: ast.BinOp, depth: int) -> Expr:
        span = self.span(node)
        if isinstance(node.op, ast.Pow):
            base = self.numeric(node.left, depth, "'**'")
            exp = node.right
            if not (
                isinstance(exp, ast.Constant) and type(exp.value) is int and 0 <= exp.value <= MAX_EXPONENT
            ):
                self.fail(RailSyntaxError, exp, f"exponent must be a constant integer 0..{MAX_EXPONENT}")
            return ir.Pow(base.sort, span, base, exp.value)
        op = _ARITH.get(type(node.op))
        if op is None:
            sym = self.text[self.span(node.left)[1] : self.span(node.right)[0]].strip() or "operator"
            self.fail(RailSyntaxError, node, f"operator {sym!r} is not allowed in a rail")
        left, right = self.expr(node.left, depth), self.expr(node.right, depth)
        self._no_record(left, node.left)
        self._no_record(right, node.right)
        if op == "+" and left.sort == STR and right.sort == STR:
            return ir.Arith(STR, span, op, left, right)
        if not (left.sort.numeric and right.sort.numeric):
            bad_node, bad = (node.left, left) if not left.sort.numeric else (node.right, right)
            verb = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}.get(op, f"apply {op!r} to")
            del bad
            message = f"{self.src(span)}: cannot {verb} {left.sort.describe()} and {right.sort.describe()}"
            self.fail(RailSortError, self._focus(bad_node), message)
        if op in ("//", "%") and (left.sort == REAL or right.sort == REAL):
            self.fail(RailSortError, node, f"{op!r} needs ints (use '/' for reals)")
        sort = REAL if op == "/" or REAL in (left.sort, right.sort) else INT
        return ir.Arith(sort, span, op, left, right)

    def unary(self, node: ast.UnaryOp, depth: int) -> Expr:
        span = self.span(node)
        if isinstance(node.op, ast.Not):
            return ir.Not(BOOL, span, self.boolean(node.operand, depth))
        if isinstance(node.op, ast.USub | ast.UAdd):
            arg = self.numeric(node.operand, depth, "unary '-'")
            return ir.Neg(arg.sort, span, arg) if isinstance(node.op, ast.USub) else arg
        self.fail(RailSyntaxError, node, "operator '~' is not allowed in a rail")

    def compare(self, node: ast.Compare, depth: int) -> Expr:
        links: list[Expr] = []
        left_node: ast.expr = node.left
        left: Expr | None = self.expr(left_node, depth)
        for op_node, right_node in zip(node.ops, node.comparators):
            if left is None:  # the previous link was 'in': its right side is now a left side
                left = self.expr(left_node, depth)
            span = (self.span(left_node)[0], self.span(right_node)[1])
            if isinstance(op_node, ast.In | ast.NotIn):
                negated = isinstance(op_node, ast.NotIn)
                links.append(self.member(left, left_node, right_node, negated, span, depth))
                left = None
            else:
                op = _CMP.get(type(op_node))
                if op is None:
                    self.fail(RailSyntaxError, right_node, "'is' is not allowed in a rail (use ==)")
                right = self.expr(right_node, depth)
                links.append(self.comparison(op, left, right, left_node, right_node, span))
                left = right
            left_node = right_node
        if len(links) == 1:
            return links[0]
        return ir.BoolOp(BOOL, self.span(node), "and", tuple(links))

    def comparison(
        self, op: str, a: Expr, b: Expr, an: ast.expr, bn: ast.expr, span: tuple[int, int]
    ) -> Expr:
        self._no_record(a, an)
        self._no_record(b, bn)
        if op in ("<", "<=", ">", ">="):
            for expr, n in ((a, an), (b, bn)):
                if not expr.sort.numeric:
                    self.fail(RailSortError, self._focus(n), f"{op!r} compares numbers, {self._show(expr)}")
            return ir.Compare(BOOL, span, op, a, b)
        a, b = self.unify(a, b, an, bn)
        return ir.Compare(BOOL, span, op, a, b)

    def unify(self, a: Expr, b: Expr, an: ast.expr, bn: ast.expr) -> tuple[Expr, Expr]:
        """Make ``a == b`` well sorted: numbers mix; a string literal meets an enum."""
        if a.sort.numeric and b.sort.numeric:
            return a, b
        if a.sort.kind == "enum" and b.sort == STR and isinstance(b, ir.Const):
            return a, self.enum_const(b, a.sort, bn)
        if b.sort.kind == "enum" and a.sort == STR and isinstance(a, ir.Const):
            return self.enum_const(a, b.sort, an), b
        if a.sort == b.sort and a.sort.kind in ("str", "bool", "enum"):
            return a, b
        self.fail(
            RailSortError, self._focus(bn), f"cannot compare {a.sort.describe()} with {b.sort.describe()}"
        )

    def enum_const(self, const: ir.Const, sort: Sort, node: ast.expr) -> ir.Const:
        assert sort.enum is not None
        if const.value not in sort.enum.values:
            allowed = ", ".join(sort.enum.values)
            self.fail(RailSortError, node, f"{const.value!r} is not a value of {sort.describe()} ({allowed})")
        return ir.Const(sort, const.span, const.value)

    def member(
        self,
        item: Expr,
        item_node: ast.expr,
        cont: ast.expr,
        negated: bool,
        span: tuple[int, int],
        depth: int,
    ) -> Expr:
        self._no_record(item, item_node)
        if isinstance(cont, ast.List | ast.Tuple | ast.Set):
            elems = []
            for elt in cont.elts:
                e = self.expr(elt, depth + 1)
                _, e = self.unify(item, e, item_node, elt)
                elems.append(e)
            return ir.Member(BOOL, span, item, tuple(elems), negated)
        container = self.expr(cont, depth)
        csort = container.sort
        if csort == STR:
            if item.sort != STR:
                self.fail(
                    RailSortError, self._focus(item_node), f"'in' a string needs a string, {self._show(item)}"
                )
            return ir.Member(BOOL, span, item, container, negated)
        if csort.kind != "list":
            self.fail(
                RailSortError, self._focus(cont), f"'in' needs a list or a string, {self._show(container)}"
            )
        isort = csort.item
        if isinstance(container, ir.Const):
            values = container.value
            if item.sort.kind == "enum" and isort in (STR, None):
                assert item.sort.enum is not None
                values = tuple(v for v in values if v in item.sort.enum.values)
                return ir.Member(
                    BOOL, span, item, ir.Const(Sort("list", item=item.sort), container.span, values), negated
                )
            if isort is None or (isort.numeric and item.sort.numeric) or isort == item.sort:
                return ir.Member(BOOL, span, item, container, negated)
        elif (
            isort is not None
            and isort.kind != "record"
            and ((isort.numeric and item.sort.numeric) or isort == item.sort)
        ):
            return ir.Member(BOOL, span, item, container, negated)
        self.fail(
            RailSortError, self._focus(item_node), f"{self._show(item)}, the list holds {csort.describe()}"
        )

    def call(self, node: ast.Call, depth: int) -> Expr:
        span = self.span(node)
        if node.keywords:
            self.fail(RailSyntaxError, node.keywords[0].value, "keyword arguments are not allowed in a rail")
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(RailSyntaxError, node, "'*' arguments are not allowed in a rail")
        func = node.func
        if not isinstance(func, ast.Name | ast.Attribute):
            self.expr(func, depth)  # refuses lambdas and the like with their own message
            self.fail(RailSyntaxError, func, "only named functions can be called")
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            target = self.expr(func.value, depth)
            if target.sort != STR:
                self.fail(
                    RailSortError,
                    self._focus(func.value),
                    f".{func.attr}() needs a string, {self._show(target)}",
                )
            self._arity(node, 1, 1, func.attr)
            arg = self.expr(node.args[0], depth)
            if arg.sort != STR:
                self.fail(RailSortError, node.args[0], f".{func.attr}() takes a string, {self._show(arg)}")
            return ir.Call(BOOL, span, func.attr, (target, arg))
        if not isinstance(func, ast.Name) or func.id not in _FUNCTIONS:
            what = func.id if isinstance(func, ast.Name) else self.src(self.span(func))
            if isinstance(func, ast.Attribute):
                what = func.attr
                if func.attr.startswith("_"):
                    self.fail(RailNameError, self._focus(func), f"attribute {func.attr!r} is not allowed")
            allowed = ", ".join(_FUNCTIONS) + ", .startswith, .endswith"
            self.fail(RailNameError, func, f"call to {what!r} is not allowed (functions: {allowed})")
        fn = func.id
        if fn == "implies":
            self._arity(node, 2, 2, fn)
            a, b = (self.boolean(x, depth) for x in node.args)
            return ir.Implies(BOOL, span, a, b)
        if fn == "len":
            self._arity(node, 1, 1, fn)
            arg = self.expr(node.args[0], depth)
            if arg.sort != STR and arg.sort.kind != "list":
                self.fail(
                    RailSortError,
                    self._focus(node.args[0]),
                    f"len() needs a string or a list, {self._show(arg)}",
                )
            if isinstance(arg, ir.Const):
                return ir.Const(INT, span, len(arg.value))
            return ir.Call(INT, span, fn, (arg,))
        if fn == "abs":
            self._arity(node, 1, 1, fn)
            arg = self.numeric(node.args[0], depth, "abs()")
            return ir.Call(arg.sort, span, fn, (arg,))
        if fn in ("min", "max"):
            self._arity(node, 2, 16, fn)
            args = tuple(self.numeric(a, depth, f"{fn}()") for a in node.args)
            sort = REAL if any(a.sort == REAL for a in args) else INT
            return ir.Call(sort, span, fn, args)
        if fn == "matches":
            self._arity(node, 2, 2, fn)
            target = self.expr(node.args[0], depth)
            if target.sort != STR:
                self.fail(
                    RailSortError,
                    self._focus(node.args[0]),
                    f"matches() needs a string, {self._show(target)}",
                )
            pat = self.expr(node.args[1], depth)
            if not (isinstance(pat, ir.Const) and pat.sort == STR):
                self.fail(RailSyntaxError, node.args[1], "matches() takes a constant regex string")
            try:
                compiled = compile_regex(pat.value)
            except (re.error, RecursionError, OverflowError) as exc:
                self.fail(RailSyntaxError, node.args[1], f"bad regex {pat.value!r}: {exc}")
            return ir.Call(BOOL, span, fn, (target, pat), compiled)
        # a string predicate from builtins.py
        self._arity(node, 1, 1, fn)
        arg = self.expr(node.args[0], depth)
        if arg.sort != STR:
            self.fail(RailSortError, self._focus(node.args[0]), f"{fn}() needs a string, {self._show(arg)}")
        return ir.Call(BOOL, span, fn, (arg,))

    def _arity(self, node: ast.Call, lo: int, hi: int, fn: str) -> None:
        n = len(node.args)
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            self.fail(RailSyntaxError, node, f"{fn}() takes {want} arguments, got {n}")
