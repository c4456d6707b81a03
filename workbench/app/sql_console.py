"""An SQL console over the trace store: a query in, a table out, reads only.

The store the server hands the app reads through the trace writer's own connection, which
could write; so the console runs one statement at a time and only statements that read:
``SELECT`` (with ``WITH``, ``FROM ...``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, which DuckDB
parses as selects) and ``EXPLAIN``; not ``PRAGMA``. Anything else is refused before it reaches the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd
import panel as pn

from workbench.errors import WorkbenchError
from workbench.traces.schema import TABLES, VIEWS

from .text import message, text_pane

__all__ = ["MAX_ROWS", "SqlConsole", "read_only_problem"]

MAX_ROWS = 1000  # rows shown; the count of all of them is reported
_PRAGMA = re.compile(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*pragma\b", re.IGNORECASE | re.DOTALL)
_READS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
EXAMPLE = "SELECT node, calls, round(p50_ms, 2) AS p50_ms, round(p95_ms, 2) AS p95_ms FROM node_latency"


def read_only_problem(sql: str) -> str | None:
    """Why ``sql`` may not run in the console (one paragraph), or None for a single read."""
    if not sql.strip():
        return "type a query first, e.g. " + EXAMPLE
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        return f"cannot parse the query: {str(exc).splitlines()[0]}"
    if len(statements) != 1:
        return f"run one statement at a time (this text holds {len(statements)})"
    kind = statements[0].type
    if _PRAGMA.match(sql):  # DuckDB parses PRAGMA as a select of a pragma function
        return "the console only reads with SELECT: PRAGMA statements are refused (try SHOW TABLES)."
    if kind not in _READS:
        return (
            f"the console only reads: {kind.name} statements are refused. Use SELECT (or WITH, "
            "FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); the traces are written by runs only."
        )
    return None


class SqlConsole(pn.viewable.Viewer):
    """A query box, a Run button and the result in a Tabulator; ``store`` gives a ``TraceStore``."""

    def __init__(self, store: Callable[[], Any], **params: Any) -> None:
        super().__init__(**params)
        self._store = store
        self.editor = pn.widgets.TextAreaInput(
            value=EXAMPLE, height=90, sizing_mode="stretch_width", css_classes=["wb-sql-editor"]
        )
        self.run_button = pn.widgets.Button(
            label="Run", color="primary", width=80, css_classes=["wb-sql-run"]
        )
        self.run_button.on_click(self._clicked)
        self.result = pn.widgets.Tabulator(
            pd.DataFrame(),
            disabled=True,
            show_index=False,
            height=240,
            pagination="local",
            page_size=50,
            sizing_mode="stretch_width",
            css_classes=["wb-sql-result"],
        )
        self.info = text_pane(sizing_mode="stretch_width", css_classes=["wb-sql-info"])

    def _clicked(self, _event: object) -> None:
        self.run()

    def run(self, sql: str | None = None) -> pd.DataFrame | None:
        """Run ``sql`` (default: the editor's text); show the rows or why not. Returns the rows."""
        if sql is not None:
            self.editor.value = text = sql
        else:  # what is typed: the browser sends `value` only when the box loses focus
            text = self.editor.value_input or self.editor.value or ""
        problem = read_only_problem(text)
        if problem is None:
            try:
                table = self._store().arrow(text)
            except WorkbenchError as exc:
                problem = str(exc)
        if problem is not None:
            self.result.value = pd.DataFrame()  # an older result must not pass for this one's
            message(self.info, problem, "error")
            return None
        rows = table.num_rows
        df = table.slice(0, MAX_ROWS).to_pandas()
        # Tabulator shows JSON-ish cells best as text (lists, dicts, bytes).
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        self.result.value = df
        shown = (
            f"first {MAX_ROWS} of {rows} rows"
            if rows > MAX_ROWS
            else f"{rows} row" + ("" if rows == 1 else "s")
        )
        message(self.info, shown, "ok")
        return df

    def __panel__(self) -> Any:
        return pn.Column(
            pn.pane.HTML(
                f"<b>SQL</b> over the trace database (tables: {', '.join(TABLES)}; views: {', '.join(VIEWS)})"
            ),
            self.editor,
            pn.Row(self.run_button, self.info, sizing_mode="stretch_width"),
            self.result,
            sizing_mode="stretch_width",
        )
