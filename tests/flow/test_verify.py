"""Static verification of flows: a table of small flows with known verdicts
(docs/architecture.md, "Verification statuses").

Every ``enforced`` counterexample is checked independently of the verifier: its values
are mapped back to each rail's names (port, the node's other ports, flow inputs) and
evaluated with the rails' runtime evaluator: it must pass every hypothesis rail the
verifier listed and break the rail itself. Where the rail reads only values that wires
carry from the flow's inputs, the flow is also run on the counterexample and the rail
must block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import z3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.rails.rail_sets import ITEM_SPEC, conjunction, rail_texts
from workbench.cli import main
from workbench.errors import RailViolation, ValueValidationError
from workbench.examples import flow_path
from workbench.flow import Flow, loads
from workbench.flow.model import PortRef
from workbench.flow.port_rails import FlowRail, flow_rails
from workbench.flow.verify import RailStatus, check_report, explain_rail, verify
from workbench.runtime import execute

HERE = "tests.flow.test_verify"


# -- tools the runnable flows call ------------------------------------------------------------


def echo_int(x: int) -> dict:
    return {"y": x}


def echo_str(s: str) -> dict:
    return {"out": s}


def echo_pair(x: int, y: int) -> dict:
    return {"out": x}


def echo_item(item: dict) -> dict:
    return {"out": f"{item['qty']} at {item['price']}"}


# -- flow text ------------------------------------------------------------------------------


def one_tool(inputs: str, rails: str = "", *, node_in: str = "", out: str = "int", extra: str = "") -> str:
    """A flow ``inputs -> t -> out`` with one tool node taking every flow input."""
    names = [part.split(":")[0].strip() for part in _top_level(inputs.strip()[1:-1])]
    node_in = node_in or "{" + ", ".join(f"{n}: {_bare(inputs, n)}" for n in names) + "}"
    wires = ", ".join([*(f"{n} -> t.{n}" for n in names), "t.y -> out"])
    text = f"""flow: f
version: 1
inputs: {inputs}
outputs: {{out: {out}}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_int, inputs: {node_in}, outputs: {{y: {out}}}{extra}}}
wires: [{wires}]
"""
    return text + (f"rails:\n{rails}" if rails else "")


def _top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "{["
        depth -= ch in "}]"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur] if cur.strip() else parts


def _bare(inputs: str, name: str) -> str:
    """The node port type for flow input ``name``: the input's base type without bounds."""
    for part in _top_level(inputs.strip()[1:-1]):
        key, _, typ = part.partition(":")
        if key.strip() == name:
            typ = typ.strip()
            if typ.startswith("{enum"):
                return typ
            for base in ("int", "float", "str", "bool"):
                if base in typ:
                    return base
    raise AssertionError(name)


TRADER = flow_path("trader").read_text()

TRADER_LIKE = """flow: trader2
version: 1
types:
  Side: {enum: [buy, sell, hold]}
  Order: {side: Side, ticker: {str: {pattern: "[A-Z]{1,5}"}}, qty: {int: {ge: 0}}, price: {float: {gt: 0}}}
constants:
  RESTRICTED: [ACME, GLOBX]
inputs:  {news: str, cash: {float: {ge: 0}}}
outputs: {approved: Order}
nodes:
  analyst: {kind: llm, model: default, prompt: "x", inputs: {news: str, cash: float}, outputs: {order: Order}}
  risk: {kind: tool, tool: m:f, inputs: {proposed: Order, cash: float}, outputs: {approved: Order}}
wires: [news -> analyst.news, cash -> analyst.cash, cash -> risk.cash, analyst.order -> risk.proposed,
        risk.approved -> approved]
rails:
  small: {on: analyst.order, check: "order.qty <= 10 and order.price <= 100"}
"""

ROUTER = f"""flow: r
version: 1
inputs: {{n: int}}
outputs: {{big: int, small: int, other: int}}
nodes:
  route: {{kind: router, routes: {{large: "n > 100", tiny: "n <= 100"}}, inputs: {{n: int}},
          outputs: {{large: int, tiny: int}}}}
  side: {{kind: tool, tool: {HERE}:echo_int, inputs: {{x: int}}, outputs: {{y: int}}}}
wires: [n -> route.n, route.large -> big, route.tiny -> small, n -> side.x, side.y -> other]
rails:
  on_big: {{on: big, check: "big > 100"}}
  on_small: {{on: small, check: "small <= 100"}}
  on_side: {{on: side.x, check: "x > 5"}}
"""

LOOP = f"""flow: loopy
version: 1
inputs: {{start: {{int: {{ge: 1}}}}}}
outputs: {{final: int}}
nodes:
  loop: {{kind: loop, max_iterations: 10, until: "next >= 50", inputs: {{init: int, next: int}},
         outputs: {{item: int, result: int}}}}
  step: {{kind: tool, tool: {HERE}:echo_int, inputs: {{x: int}}, outputs: {{y: int}}, guarantees: ["y >= x"]}}
wires: [start -> loop.init, loop.item -> step.x, step.y -> loop.next, loop.result -> final]
rails:
  positive: {{on: final, check: "final >= 1"}}
"""

VOTE = """flow: voter
version: 1
inputs: {v0: {int: {ge: 0}}, v1: {int: {ge: 0}}, v2: {int: {ge: 0}}}
outputs: {winner: int}
nodes:
  vote: {kind: vote, inputs: {v0: int, v1: int, v2: int}, outputs: {winner: int}}
wires: [v0 -> vote.v0, v1 -> vote.v1, v2 -> vote.v2, vote.winner -> winner]
rails:
  nonneg: {on: winner, check: "winner >= 0"}
"""

STR_FLOW = f"""flow: s
version: 1
inputs: {{s: str}}
outputs: {{out: str}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_str, inputs: {{s: str}}, outputs: {{out: str}}}}
wires: [s -> t.s, t.out -> out]
"""

ITEM_TYPE = "{qty: {int: {ge: 0}}, price: float}"
ITEM_FLOW = f"""flow: items
version: 1
types:
  Item: {ITEM_TYPE}
inputs: {{item: Item}}
outputs: {{out: str}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_item, inputs: {{item: Item}}, outputs: {{out: str}}}}
wires: [item -> t.item, t.out -> out]
rails:
"""

DIGITS_FLOW = f"""flow: digits
version: 1
inputs: {{code: {{str: {{pattern: "\\\\d+"}}}}}}
outputs: {{out: str}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_str, inputs: {{s: str}}, outputs: {{out: str}}}}
wires: [code -> t.s, t.out -> out]
rails:
  ascii: {{on: t.s, check: "matches(s, '[0-9]+')"}}
"""

APPROX = "are known to the solver only by their types"


@dataclass
class Case:
    """One flow and the verdicts its rails must get."""

    id: str
    text: str
    expect: dict[str, str]
    conflict: dict[str, list[str]] = field(default_factory=dict)
    reason: dict[str, str] = field(default_factory=dict)
    hypotheses: dict[str, set[str]] = field(default_factory=dict)  # labels that must be used
    not_hypotheses: dict[str, set[str]] = field(default_factory=dict)  # labels that must not
    runnable: set[str] = field(default_factory=set)  # enforced rails to re-run on the counterexample
    note: str | None = None
    timeout_ms: int = 2000


CASES = [
    # -- proved ---------------------------------------------------------------------------
    Case(
        "trader",
        TRADER,
        {"budget": "enforced", "restricted": "enforced", "cap": "proved"},
        hypotheses={"cap": {"rail:budget", "risk.guarantees[0]", "risk.guarantees[1]"}},
        not_hypotheses={"budget": {"rail:restricted"}},
    ),
    Case(
        "input-rail-implies-node-rail",
        one_tool("{x: int}", '  in_x: {on: x, check: "x >= 10"}\n  at_t: {on: t.x, check: "x > 5"}\n'),
        {"in_x": "enforced", "at_t": "proved"},
        hypotheses={"at_t": {"rail:in_x"}},
        runnable={"in_x"},
    ),
    Case(
        "type-bound-and-rail",
        one_tool(
            "{x: {int: {ge: 0}}}",
            '  top: {on: x, check: "x <= 10"}\n  abs: {on: t.x, check: "abs(x) <= 10"}\n',
        ),
        {"top": "enforced", "abs": "proved"},
    ),
    Case(
        "guarantee-implies-output-rail",
        one_tool(
            "{x: int}",
            '  low: {on: x, check: "x >= 3"}\n  out_ok: {on: out, check: "out >= 3"}\n',
            extra=', guarantees: ["y >= x"]',
        ),
        {"low": "enforced", "out_ok": "proved"},
        hypotheses={"out_ok": {"rail:low", "t.guarantees[0]"}},
    ),
    Case(
        "router-first-branch",
        ROUTER,
        {"on_big": "proved", "on_small": "enforced", "on_side": "enforced"},
        note="routers: only the first route's condition",
    ),
    Case(
        "enum-excluded-value",
        one_tool(
            "{side: {enum: [buy, sell, hold]}}",
            "  no_hold: {on: side, check: \"side != 'hold'\"}\n"
            "  trade: {on: t.side, check: \"side == 'buy' or side == 'sell'\"}\n",
        ),
        {"no_hold": "enforced", "trade": "proved"},
        runnable={"no_hold"},
    ),
    Case(
        "string-length",
        one_tool(
            "{s: str}", '  short: {on: s, check: "len(s) <= 5"}\n  shorter: {on: t.s, check: "len(s) < 10"}\n'
        ),
        {"short": "enforced", "shorter": "proved"},
    ),
    Case(
        "regex-implies-length",
        one_tool(
            "{s: str}",
            "  ticker: {on: s, check: 'matches(s, \"[A-Z]{1,5}\")'}\n"
            '  len_ok: {on: t.s, check: "len(s) >= 1 and len(s) <= 5"}\n',
        ),
        {"ticker": "enforced", "len_ok": "proved"},
        runnable={"ticker"},
    ),
    Case(
        "constant-list",
        "constants: {RESTRICTED: [ACME, GLOBX]}\n"
        + one_tool(
            "{s: str}",
            '  allowed: {on: s, check: "s not in RESTRICTED"}\n'
            "  not_acme: {on: t.s, check: \"s != 'ACME'\"}\n",
        ),
        {"allowed": "enforced", "not_acme": "proved"},
        runnable={"allowed"},
    ),
    Case(
        "exact-reals",
        one_tool(
            "{x: float}",
            '  tenths: {on: x, check: "x == 0.1 + 0.2"}\n  exact: {on: t.x, check: "x == 0.3"}\n',
        ),
        {"tenths": "enforced", "exact": "proved"},
    ),
    Case(
        "implies",
        one_tool(
            "{side: {enum: [buy, sell, hold]}, qty: int}",
            "  cap: {on: qty, check: \"implies(side == 'buy', qty <= 10)\"}\n"
            "  same: {on: t.qty, check: \"side != 'buy' or qty < 11\"}\n",
        ),
        {"cap": "enforced", "same": "proved"},
        runnable={"cap"},
    ),
    Case(
        "two-guarantees-chain",
        f"""flow: chain
version: 1
inputs: {{x: int}}
outputs: {{out: int}}
nodes:
  a: {{kind: tool, tool: {HERE}:echo_int, inputs: {{x: int}}, outputs: {{y: int}},
      guarantees: ["y == x + 1"]}}
  b: {{kind: tool, tool: {HERE}:echo_int, inputs: {{x: int}}, outputs: {{y: int}},
      guarantees: ["y == 2 * x"]}}
wires: [x -> a.x, a.y -> b.x, b.y -> out]
rails:
  nonneg: {{on: x, check: "x >= 0"}}
  two: {{on: out, check: "out >= 2"}}
""",
        {"nonneg": "enforced", "two": "proved"},
    ),
    Case(
        "pack-notional-cap-proved",
        TRADER_LIKE
        + "  notional: {on: risk.proposed, use: finance.notional_cap,\n"
        + "             with: {order: proposed, max_notional: 1000}}\n",
        {"small": "enforced", "notional": "proved"},
        hypotheses={"notional": {"rail:small"}},
    ),
    # -- enforced -------------------------------------------------------------------------
    Case(
        "observe-is-no-hypothesis",
        one_tool(
            "{x: int}",
            '  in_x: {on: x, check: "x >= 10", enforce: observe}\n  at_t: {on: t.x, check: "x > 5"}\n',
        ),
        {"in_x": "enforced", "at_t": "enforced"},
        not_hypotheses={"at_t": {"rail:in_x"}},
        runnable={"at_t"},
    ),
    Case(
        "input-rail-alone",
        one_tool("{x: int}", '  below: {on: x, check: "x < 100"}\n'),
        {"below": "enforced"},
        runnable={"below"},
    ),
    Case(
        "tool-output-unknown",
        one_tool(
            "{x: int}", '  nonneg: {on: x, check: "x >= 0"}\n  out_nonneg: {on: out, check: "out >= 0"}\n'
        ),
        {"nonneg": "enforced", "out_nonneg": "enforced"},
    ),
    Case(
        "pack-restricted-list",
        TRADER_LIKE
        + "  restr: {on: risk.proposed, use: finance.restricted_list,\n"
        + "          with: {order: proposed, restricted: RESTRICTED}}\n",
        {"small": "enforced", "restr": "enforced"},
    ),
    Case(
        "pack-position-limit-by-name",
        """flow: pos
version: 1
types:
  Order: {side: {enum: [buy, sell, hold]}, qty: {int: {ge: 0}}}
inputs: {order: Order, position: int}
outputs: {out: int}
nodes:
  t: {kind: tool, tool: m:f, inputs: {order: Order, position: int}, outputs: {y: int}}
wires: [order -> t.order, position -> t.position, t.y -> out]
rails:
  flat: {on: order, check: "order.qty <= 10 and position == 0"}
  limit: {on: t.order, use: finance.position_limit, with: {max_position: 100}}
  tight: {on: t.order, use: finance.position_limit, with: {max_position: 5}}
""",
        {"flat": "enforced", "limit": "proved", "tight": "enforced"},
    ),
    # Regression: an int wired into a float port was taken as exactly equal there, so this
    # was proved; float(2**53 + 1) is 2**53 and the rail blocks it.
    Case(
        "int-into-float-rounds-beyond-2**53",
        one_tool(
            "{x: int}",
            '  big: {on: x, check: "x >= 9007199254740993"}\n'
            '  same: {on: t.x, check: "x >= 9007199254740993"}\n'
            '  small: {on: t.x, check: "x * 2 >= 20"}\n',
            node_in="{x: float}",
            out="float",
        ),
        {"big": "enforced", "same": "enforced", "small": "proved"},
        runnable={"same"},
    ),
    Case(
        "no-float-is-odd-beyond-2**53",
        one_tool(
            "{x: int}",
            '  odd: {on: t.x, check: "x == 9007199254740993"}\n',
            node_in="{x: float}",
            out="float",
        ),
        {"odd": "conflict"},
        conflict={"odd": []},
    ),
    Case(
        "division-by-zero-is-false",
        one_tool(
            "{x: int, d: int}",
            '  xs: {on: x, check: "x >= 0"}\n  ds: {on: d, check: "d >= 0"}\n'
            '  ratio: {on: t.x, check: "x / d >= 0"}\n',
        ),
        {"xs": "enforced", "ds": "enforced", "ratio": "enforced"},
        runnable={"ratio"},
    ),
    Case(
        "pii-pack-on-output",
        "use: [pii]\n" + STR_FLOW,
        {
            "pii.no_email[out]": "enforced",
            "pii.no_phone[out]": "enforced",
            "pii.no_card[out]": "unsupported",
            "pii.no_iban[out]": "unsupported",
        },
        reason={"pii.no_card[out]": "checksum", "pii.no_iban[out]": "checksum"},
    ),
    Case("loop-approximation", LOOP, {"positive": "enforced"}, note=f"loops {APPROX}"),
    Case("vote-approximation", VOTE, {"nonneg": "enforced"}, note=f"votes {APPROX}"),
    # -- conflict -------------------------------------------------------------------------
    Case(
        "conflict-with-type-bound",
        one_tool("{x: {int: {ge: 0}}}", '  negative: {on: t.x, check: "x < 0"}\n'),
        {"negative": "conflict"},
        conflict={"negative": []},
    ),
    Case(
        "conflict-with-input-rail",
        one_tool("{x: int}", '  big: {on: x, check: "x >= 10"}\n  tiny: {on: t.x, check: "x < 5"}\n'),
        {"big": "enforced", "tiny": "conflict"},
        conflict={"tiny": ["big"]},
    ),
    Case(
        "conflict-two-input-rails",
        one_tool("{x: int}", '  above: {on: x, check: "x > 5"}\n  below: {on: x, check: "x < 3"}\n'),
        {"above": "conflict", "below": "conflict"},
        conflict={"above": ["below"], "below": ["above"]},
    ),
    Case(
        "conflict-enum",
        one_tool(
            "{side: {enum: [buy, sell, hold]}}",
            "  buy: {on: side, check: \"side == 'buy'\"}\n  sell: {on: t.side, check: \"side == 'sell'\"}\n",
        ),
        {"buy": "enforced", "sell": "conflict"},
        conflict={"sell": ["buy"]},
    ),
    Case(
        "conflict-with-guarantee",
        one_tool(
            "{x: int}",
            '  nonneg: {on: x, check: "x >= 0"}\n  nonpos: {on: out, check: "out <= 0"}\n',
            extra=', guarantees: ["y == x + 1"]',
        ),
        {"nonneg": "enforced", "nonpos": "conflict"},
        conflict={"nonpos": ["nonneg", "t.guarantees[0]"]},
    ),
    Case(
        "conflict-trader-overspend",
        TRADER.replace(
            "enforce: decode}",
            'enforce: decode}\n  over: {on: risk.approved, check: "approved.qty * approved.price > cash"}',
        ),
        {"budget": "enforced", "restricted": "enforced", "cap": "proved", "over": "conflict"},
        conflict={"over": ["budget", "risk.guarantees[0]", "risk.guarantees[1]"]},
    ),
    # Regression: rails on one port that no value passes together were each "enforced".
    Case(
        "conflict-three-rails-on-node-port",
        ITEM_FLOW
        + '  sum: {on: t.item, check: "item.qty + item.price >= 20"}\n'
        + '  qty: {on: t.item, check: "item.qty <= 5"}\n'
        + '  price: {on: t.item, check: "item.price <= 10"}\n',
        {"sum": "conflict", "qty": "conflict", "price": "conflict"},
        conflict={"sum": ["price", "qty"], "qty": ["price", "sum"], "price": ["qty", "sum"]},
    ),
    Case(
        "conflict-two-rails-on-node-port",
        one_tool(
            "{qty: int}", '  lo: {on: t.qty, check: "qty >= 10"}\n  hi: {on: t.qty, check: "qty <= 5"}\n'
        ),
        {"lo": "conflict", "hi": "conflict"},
        conflict={"lo": ["hi"], "hi": ["lo"]},
    ),
    Case(
        "conflict-input-rail-and-port-rails",
        ITEM_FLOW
        + '  sum: {on: item, check: "item.qty + item.price >= 20"}\n'
        + '  qty: {on: t.item, check: "item.qty <= 5"}\n'
        + '  price: {on: t.item, check: "item.price <= 10"}\n',
        {"sum": "enforced", "qty": "conflict", "price": "conflict"},
        conflict={"qty": ["price", "sum"], "price": ["qty", "sum"]},
        hypotheses={"qty": {"rail:sum"}, "price": {"rail:sum"}},
    ),
    Case(
        "conflict-two-cores-on-one-port",
        ITEM_FLOW
        + '  many: {on: t.item, check: "item.qty >= 10"}\n'
        + '  few: {on: t.item, check: "item.qty <= 5"}\n'
        + '  dear: {on: t.item, check: "item.price >= 10"}\n'
        + '  cheap: {on: t.item, check: "item.price <= 5"}\n'
        + '  any: {on: t.item, check: "item.qty != 7"}\n',
        {"many": "conflict", "few": "conflict", "dear": "conflict", "cheap": "conflict", "any": "enforced"},
        conflict={"many": ["few"], "few": ["many"], "dear": ["cheap"], "cheap": ["dear"]},
    ),
    Case(
        "conflict-rails-on-flow-output",
        one_tool("{x: int}", '  big: {on: out, check: "out > 3"}\n  small: {on: out, check: "out < 2"}\n'),
        {"big": "conflict", "small": "conflict"},
        conflict={"big": ["small"], "small": ["big"]},
    ),
    # Regression: input rails are each other's hypotheses, so two that break the type
    # made each other look unreachable ("vacuous") and check passed.
    Case(
        "conflict-input-rails-against-type",
        one_tool(
            "{x: {int: {ge: 0}}}", '  neg: {on: x, check: "x < 0"}\n  below: {on: x, check: "x < -1"}\n'
        ),
        {"neg": "conflict", "below": "conflict"},
        conflict={"neg": [], "below": []},
    ),
    Case(
        "conflict-across-inputs-of-one-node",
        f"""flow: pair
version: 1
inputs: {{n: int}}
outputs: {{out: int}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_pair, inputs: {{x: int, y: int}}, outputs: {{out: int}}}}
wires: [n -> t.x, n -> t.y, t.out -> out]
rails:
  big: {{on: t.x, check: "x >= 10"}}
  small: {{on: t.y, check: "y <= 5"}}
""",
        {"big": "conflict", "small": "conflict"},
        conflict={"big": ["small"], "small": ["big"]},
    ),
    Case(
        "conflict-across-outputs-of-one-node",
        f"""flow: split
version: 1
inputs: {{n: int}}
outputs: {{a: int, b: int}}
nodes:
  t: {{kind: tool, tool: {HERE}:echo_int, inputs: {{x: int}}, outputs: {{a: int, b: int}},
      guarantees: ["a == b"]}}
wires: [n -> t.x, t.a -> a, t.b -> b]
rails:
  big: {{on: t.a, check: "a >= 10"}}
  small: {{on: t.b, check: "b <= 5"}}
  later: {{on: b, check: "b != 7"}}
""",
        {"big": "conflict", "small": "conflict", "later": "vacuous"},
        conflict={"big": ["small", "t.guarantees[0]"], "small": ["big", "t.guarantees[0]"]},
    ),
    Case(
        "port-rails-compatible",
        ITEM_FLOW
        + '  sum: {on: t.item, check: "item.qty + item.price >= 20"}\n'
        + '  qty: {on: t.item, check: "item.qty <= 5"}\n'
        + '  price: {on: t.item, check: "item.price <= 15"}\n',
        {"sum": "enforced", "qty": "enforced", "price": "enforced"},
    ),
    Case(
        "observed-rail-blocks-nothing",
        one_tool(
            "{qty: int}",
            '  lo: {on: t.qty, check: "qty >= 10", enforce: observe}\n  hi: {on: t.qty, check: "qty <= 5"}\n',
        ),
        {"lo": "enforced", "hi": "enforced"},
    ),
    # -- vacuous --------------------------------------------------------------------------
    Case(
        "vacuous-by-type-bound",
        one_tool("{x: {int: {ge: 0}}}", '  weak: {on: t.x, check: "x >= -1"}\n'),
        {"weak": "vacuous"},
        reason={"weak": "always true by types"},
    ),
    Case(
        "vacuous-unreachable",
        one_tool(
            "{x: int}",
            '  above: {on: x, check: "x > 5"}\n  below: {on: x, check: "x < 3"}\n'
            '  four: {on: t.x, check: "x != 4"}\n',
        ),
        {"above": "conflict", "below": "conflict", "four": "vacuous"},
        reason={"four": "contradict"},
    ),
    Case(
        "vacuous-enum-membership",
        one_tool(
            "{side: {enum: [buy, sell, hold]}}",
            "  any: {on: t.side, check: \"side in ['buy', 'sell', 'hold']\"}\n",
        ),
        {"any": "vacuous"},
    ),
    Case(
        "vacuous-length",
        one_tool("{s: str}", '  len0: {on: t.s, check: "len(s) >= 0"}\n'),
        {"len0": "vacuous"},
    ),
    Case(
        "vacuous-by-pattern",
        one_tool('{s: {str: {pattern: "[A-Z]{1,5}"}}}', '  five: {on: s, check: "len(s) <= 5"}\n'),
        {"five": "vacuous"},
    ),
    # -- unsupported ----------------------------------------------------------------------
    Case(
        "unsupported-nonlinear-timeout",
        one_tool(
            "{a: {int: {ge: 1}}, b: {int: {ge: 1}}, c: {int: {ge: 1}}}",
            '  fermat: {on: t.a, check: "a * a * a + b * b * b != c * c * c"}\n',
        ),
        {"fermat": "unsupported"},
        reason={"fermat": "z3 says unknown"},
        timeout_ms=200,
    ),
    Case(
        "unsupported-lookahead",
        STR_FLOW + "rails:\n  look: {on: t.s, check: 'not matches(s, \"(?=x)x+\")'}\n",
        {"look": "unsupported"},
        reason={"look": "regex feature"},
    ),
    Case(
        "unsupported-backreference",
        STR_FLOW + "rails:\n  back: {on: t.s, check: 'not matches(s, \"(a)\\\\1\")'}\n",
        {"back": "unsupported"},
        reason={"back": "regex feature"},
    ),
]


# -- checking counterexamples -------------------------------------------------------------


def port_path(ref: PortRef) -> str:
    return str(ref)


def values_for(flow: Flow, rail: FlowRail, example: dict[str, Any]) -> dict[str, Any] | None:
    """The rail's root names looked up in a counterexample (written here, not taken from
    verify); None when the counterexample has no value for one of them (it may leave out
    ports that share nothing with the rail checked)."""
    ref = rail.port
    node = flow.nodes.get(ref.node or "")
    out = {}
    for name in rail.names:
        if name == ref.port:
            path = port_path(ref)
        elif node is not None and (
            name in node.inputs or (ref.port in node.outputs and name in node.outputs)
        ):
            path = f"{node.name}.{name}"
        elif name in flow.inputs or name in flow.outputs:
            path = name
        else:
            continue  # a constant
        if path not in example:
            return None
        out[name] = example[path]
    return out


def check_counterexample(flow: Flow, status: RailStatus) -> None:
    example = status.counterexample
    assert example, f"{status.name}: enforced without a counterexample"
    for path, value in example.items():  # every value has its port's type
        node, _, port = path.rpartition(".")
        typ = flow.nodes[node].port_type(port) if node else {**flow.inputs, **flow.outputs}[port]
        typ.validate(value, path)
    rails = {r.name: r for r in flow_rails(flow)}
    for label in status.hypotheses:
        name = label.removeprefix("rail:")
        values = values_for(flow, rails[name], example) if name in rails else None
        if values is not None:  # a hypothesis on ports the counterexample leaves out shares nothing with it
            assert rails[name].rail.holds(values), f"{status.name}: counterexample breaks {label}: {example}"
    values = values_for(flow, rails[status.name], example)
    assert values is not None, f"{status.name}: counterexample {example} lacks a value the rail reads"
    assert not rails[status.name].rail.holds(values), f"{status.name}: {example} does not break the rail"


def check_blocks_at_runtime(flow: Flow, status: RailStatus) -> None:
    example = status.counterexample
    assert example is not None
    inputs = {name: example[name] for name in flow.inputs}
    try:
        result = execute(flow, inputs, trust=True)
    except RailViolation as exc:  # a rail on a flow input blocks before the run starts
        message = str(exc)
    else:
        assert result.status == "failed", f"{status.name}: the counterexample {inputs} ran through"
        message = str(result.error)
    assert f"rail '{status.name}' blocked" in message, message


def structural(core: list[str]) -> list[str]:
    return [label for label in core if label.startswith(("type:", "wire:"))]


def rails_in(core: list[str]) -> list[str]:
    """The rails and guarantees of a core (types and wires are the flow's structure: which
    of two aliased ports names a type bound is the prover's choice)."""
    return sorted(label for label in core if label not in structural(core))


# -- the table ------------------------------------------------------------------------------


def test_the_table_is_big_enough():
    assert len(CASES) >= 30
    kinds = {s for case in CASES for s in case.expect.values()}
    assert kinds == {"proved", "enforced", "conflict", "vacuous", "unsupported"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_verdicts(case: Case):
    flow = loads(case.text)
    report = verify(flow, timeout_ms=case.timeout_ms)
    assert report.errors == []
    got = {r.name: r for r in report.rails}
    if case.expect:
        assert {name: r.status for name, r in got.items()} == case.expect
    assert not any(r.kind == "guarantee" and r.name in got for r in flow_rails(flow)), (
        "guarantees are no goals"
    )
    for status in got.values():
        if status.status == "enforced":
            check_counterexample(flow, status)
        else:
            assert status.counterexample is None or status.status == "unsupported"
        if status.status == "conflict":
            assert not report.ok
        if status.status == "unsupported":
            assert status.reason, f"{status.name}: unsupported without a reason"
    for name, core in case.conflict.items():
        assert got[name].conflict_with and rails_in(got[name].conflict_with) == core, got[name].conflict_with
        assert all(label.startswith(("type:", "wire:")) for label in structural(got[name].conflict_with))
    for name, text in case.reason.items():
        assert text in got[name].reason
    for name, labels in case.hypotheses.items():
        assert labels <= set(got[name].hypotheses), got[name].hypotheses
    for name, labels in case.not_hypotheses.items():
        assert not labels & set(got[name].hypotheses), got[name].hypotheses
    for name in case.runnable:
        check_blocks_at_runtime(flow, got[name])
    if case.note:
        assert any(case.note in n for n in report.notes), report.notes
    else:
        assert not any(APPROX in n or "routers" in n for n in report.notes), report.notes
    assert report.ok == (not any(r.status == "conflict" for r in report.rails))


def _status(text: str, name: str) -> RailStatus:
    (found,) = [r for r in verify(loads(text)).rails if r.name == name]
    return found


def test_vacuous_pattern_rail_never_blocks_what_the_type_lets_through():
    """Regression: the type ``\\d+`` let ``"١٢"`` through (Unicode digits) while the prover,
    reading ``\\d`` as ``[0-9]``, called the rail vacuous; the rail then blocked the run."""
    flow = loads(DIGITS_FLOW)
    assert _status(DIGITS_FLOW, "ascii").status == "vacuous"
    assert execute(flow, {"code": "12"}, trust=True).outputs == {"out": "12"}
    with pytest.raises(ValueValidationError, match="does not match pattern"):
        execute(flow, {"code": "١٢"}, trust=True)


TOO_DEAR = ["item.qty + item.price >= 20", "item.qty <= 5", "item.price <= 10"]


@settings(max_examples=30, deadline=None)
@given(placed=st.lists(st.tuples(st.sampled_from(["item", "t.item"]), rail_texts), min_size=1, max_size=4))
@example(placed=[("t.item", text) for text in TOO_DEAR])
@example(placed=[("item", TOO_DEAR[0]), ("t.item", TOO_DEAR[1]), ("t.item", TOO_DEAR[2])])
def test_conflict_iff_no_value_passes_every_rail(placed: list[tuple[str, str]]):
    """``workbench check`` fails exactly when no input can pass every rail (a bare solver
    on the conjunction says so); otherwise a run on the solver's value passes them all."""
    rails = "".join(f"  r{i}: {{on: {port}, check: '{text}'}}\n" for i, (port, text) in enumerate(placed))
    flow = loads(ITEM_FLOW.replace(ITEM_TYPE, ITEM_SPEC) + rails)
    report = verify(flow, timeout_ms=5000)
    assert report.errors == [] and not any(r.status == "unsupported" for r in report.rails), report.rails
    verdict, value = conjunction([text for _, text in placed])
    assert verdict != z3.unknown
    assert report.ok == (verdict == z3.sat), report.rails
    if value is not None and isinstance(value["price"], float):  # a rational no float holds cannot be sent
        result = execute(flow, {"item": value}, trust=True)
        assert result.status == "ok", (value, result.error)


def test_division_counterexample_divides_by_zero():
    case = next(c for c in CASES if c.id == "division-by-zero-is-false")
    example = _status(case.text, "ratio").counterexample
    assert example is not None and example["t.d"] == 0 and example["t.x"] >= 0


def test_position_limit_counterexample_breaks_the_tighter_limit():
    case = next(c for c in CASES if c.id == "pack-position-limit-by-name")
    example = _status(case.text, "tight").counterexample
    assert example is not None
    order = example["t.order"]
    assert order["side"] in ("buy", "sell") and 5 < order["qty"] <= 10 and example["t.position"] == 0


def test_router_facts_hold_only_on_their_branch():
    """Regression: the first route's condition used to be assumed everywhere (it made
    ``small <= 100`` a conflict and ``x > 5`` on an unrelated node proved)."""
    statuses = {r.name: r for r in verify(loads(ROUTER)).rails}
    assert statuses["on_big"].hypotheses == ["route:route.large"]
    assert "route:route.large" not in statuses["on_small"].hypotheses
    assert statuses["on_small"].status == "enforced"
    assert statuses["on_side"].status == "enforced" and statuses["on_side"].counterexample["side.x"] <= 5


def test_explain_shows_smtlib_hypotheses_and_verdict():
    flow = loads(TRADER)
    text = explain_rail(flow, "cap")
    assert text.startswith("rail 'cap': approved.qty * approved.price <= cash")
    assert "(declare-fun risk.cash () Real)" in text
    assert "[rail:budget]" in text and "[risk.guarantees[0]]" in text
    assert "verdict: proved" in text
    enforced = explain_rail(flow, "restricted")
    assert "verdict: enforced" in enforced and ("ACME" in enforced or "GLOBX" in enforced)
    with pytest.raises(Exception, match="has no rail 'nope'"):
        explain_rail(flow, "nope")


def test_check_report_shape_and_bad_rail_text():
    report = check_report(loads(TRADER), explain="budget")
    assert [r["status"] for r in report["rails"]] == ["enforced", "enforced", "proved"]
    assert "verdict: enforced" in report["explain"]
    bad = verify(loads(one_tool("{x: int}", "  typo: {on: t.x, check: \"x + 'a' > 1\"}\n")))
    assert bad.rails == [] and len(bad.errors) == 1
    assert "rail 'typo'" in bad.errors[0] and "column" in bad.errors[0]
    assert not bad.ok


def test_cli_check_json_exit_codes(tmp_path, capsys):
    conflict = next(c for c in CASES if c.id == "conflict-with-input-rail")
    path = tmp_path / "conflict.flow.yaml"
    path.write_text(conflict.text)
    code = main(["check", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["ok"] is False
    tiny = next(r for r in data["rails"] if r["name"] == "tiny")
    assert tiny["status"] == "conflict" and rails_in(tiny["conflict_with"]) == ["big"]
    assert main(["check", "trader", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and {r["name"]: r["status"] for r in data["rails"]}["cap"] == "proved"
    assert main(["check", "trader", "--explain", "cap"]) == 0
    assert "verdict: proved" in capsys.readouterr().out
