"""Two runs side by side: their outputs and span durations in two columns, differences marked.

Spans are matched by name and by their order among spans of that name (a loop's third
``invoke_node draft`` meets the other run's third), so runs of different flows compare too:
a span that only one run has shows an empty cell on the other side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn

from workbench.errors import WorkbenchError

from .text import message, text_pane

__all__ = ["RunCompare", "compare_outputs", "compare_spans"]

CHANGED = "≠"  # the mark on a row that differs between the two runs
# A duration differs when it is off by both this many milliseconds and this fraction of the
# longer one: a 0.007 vs 0.005 ms guardrail check is noise, not a difference.
MIN_DIFF_MS = 1.0
MIN_DIFF_SHARE = 0.2
DIFF_RULE = f"duration off by at least {MIN_DIFF_MS:g} ms and {MIN_DIFF_SHARE:.0%}"
PAGE_ROWS = 20  # span rows a page of the table shows (it is as tall as they are)


def _outputs(store: Any, run_id: str) -> dict[str, Any]:
    rows = store.arrow("SELECT outputs FROM runs WHERE run_id = ?", [run_id]).to_pylist()
    raw = rows[0]["outputs"] if rows else None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = raw
    return _flat(value) if isinstance(value, dict) else {"(outputs)": value}


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Records spread into dotted keys (``reply.category``), so a difference names its field."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def compare_outputs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """``(key, a as JSON, b as JSON, differs)`` for every output key of either run."""
    rows = []
    for key in sorted(set(a) | set(b)):
        left = json.dumps(a[key], ensure_ascii=False, default=str) if key in a else ""
        right = json.dumps(b[key], ensure_ascii=False, default=str) if key in b else ""
        rows.append((key, left, right, key not in a or key not in b or a[key] != b[key]))
    return rows


def compare_spans(
    a: pd.DataFrame, b: pd.DataFrame, *, tolerance: float = MIN_DIFF_SHARE, min_ms: float = MIN_DIFF_MS
) -> pd.DataFrame:
    """Span durations of two runs (``store.spans``) row by row: ``span, a_ms, b_ms, change``.

    ``change`` is marked when a span is missing on one side, its status differs, or its
    duration differs by at least ``min_ms`` and at least ``tolerance`` (a fraction of the
    longer one).
    """

    def keyed(df: pd.DataFrame) -> dict[str, tuple[float, str]]:
        seen: dict[str, int] = {}
        out = {}
        for name, ms, status in zip(df["name"], df["duration_ms"], df["status"]):
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name} #{seen[name]}"
            out[label] = (float(ms), str(status))
        return out

    left, right = keyed(a), keyed(b)
    order = list(left) + [k for k in right if k not in left]
    rows = []
    for key in order:
        la, rb = left.get(key), right.get(key)
        if la is None or rb is None:
            change = "only in " + ("B" if la is None else "A")
        elif la[1] != rb[1]:
            change = f"status {la[1]} / {rb[1]}"
        elif abs(la[0] - rb[0]) >= max(min_ms, tolerance * max(la[0], rb[0])):
            change = f"{rb[0] - la[0]:+.2f} ms"
        else:
            change = ""
        rows.append(
            {
                "span": key,
                "A ms": round(la[0], 3) if la else None,
                "B ms": round(rb[0], 3) if rb else None,
                "change": f"{CHANGED} {change}" if change else "",
            }
        )
    return pd.DataFrame(rows, columns=["span", "A ms", "B ms", "change"])


class RunCompare(pn.viewable.Viewer):
    """Pick runs A and B; shows their outputs and span durations, differences marked ``≠``."""

    def __init__(self, store: Callable[[], Any], **params: Any) -> None:
        super().__init__(**params)
        self._store = store
        self.run_a = pn.widgets.Select(label="run A", options=[], width=340, css_classes=["wb-compare-a"])
        self.run_b = pn.widgets.Select(label="run B", options=[], width=340, css_classes=["wb-compare-b"])
        self.button = pn.widgets.Button(label="Compare", width=90, css_classes=["wb-compare-run"])
        self.button.on_click(self._clicked)
        self.outputs_a = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-compare-out-a"])
        self.outputs_b = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-compare-out-b"])
        self.info = text_pane(css_classes=["wb-compare-info"])
        self.spans = pn.widgets.Tabulator(
            pd.DataFrame(columns=["span", "A ms", "B ms", "change"]),
            disabled=True,
            show_index=False,
            # No fixed height: the table is as tall as its rows (260 px hid the ninth).
            pagination="local",
            page_size=PAGE_ROWS,
            sizing_mode="stretch_width",
            css_classes=["wb-compare-spans"],
        )

    def _clicked(self, _event: object) -> None:
        self.compare()

    def set_runs(self, runs: pd.DataFrame) -> None:
        """Offer the runs of ``runs`` (a ``store.runs()`` frame; labels show flow and time)."""
        options = {
            f"{run_id[:12]} {flow} {status} {started}": run_id
            for run_id, flow, status, started in zip(
                runs["run_id"].astype(str), runs["flow_name"], runs["status"], runs["started"]
            )
        }
        self.run_a.options = options
        self.run_b.options = options
        ids = list(options.values())
        if len(ids) >= 2:
            self.run_a.value, self.run_b.value = ids[1], ids[0]  # older left, newer right

    def compare(self, a: str | None = None, b: str | None = None) -> pd.DataFrame | None:
        """Compare runs ``a`` and ``b`` (default: the two picked); returns the span table."""
        a, b = a or self.run_a.value, b or self.run_b.value
        if not a or not b:
            message(self.info, "pick two runs first", "error")
            return None
        try:
            store = self._store()
            out_a, out_b = _outputs(store, a), _outputs(store, b)
            table = compare_spans(store.spans(a), store.spans(b))
        except WorkbenchError as exc:
            message(self.info, f"cannot compare: {exc}", "error")
            return None
        rows = compare_outputs(out_a, out_b)
        message(
            self.outputs_a,
            f"A {a[:12]}\n" + "\n".join(f"{CHANGED if d else ' '} {k}: {x}" for k, x, _y, d in rows),
        )
        message(
            self.outputs_b,
            f"B {b[:12]}\n" + "\n".join(f"{CHANGED if d else ' '} {k}: {y}" for k, _x, y, d in rows),
        )
        self.spans.value = table
        changed = sum(1 for *_, d in rows if d)
        spans_changed = int((table["change"] != "").sum())
        message(
            self.info,
            f"{changed} of {len(rows)} outputs differ, {spans_changed} of {len(table)} spans "
            f"(missing, other status, or {DIFF_RULE})",
            "info",
        )
        return table

    def __panel__(self) -> Any:
        return pn.Column(
            pn.pane.HTML("<b>Compare two runs</b>"),
            pn.Row(self.run_a, self.run_b, self.button),
            self.info,
            pn.Row(self.outputs_a, self.outputs_b, sizing_mode="stretch_width"),
            self.spans,
            sizing_mode="stretch_width",
        )
