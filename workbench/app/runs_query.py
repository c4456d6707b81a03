"""The runs table's query: filters (flow, status, text) and paging applied in SQL.

A store may hold thousands of runs; the traces view asks for one page of those that
match, and the count of all that match, so neither the page nor the server holds them all.
Statuses read as a person says them: ``ok``, ``error``, ``cancelled`` (an error run whose
root span says it was cancelled), ``running`` and ``incomplete`` (its process is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.traces.store import mark_incomplete

__all__ = ["ANY", "STATUSES", "RunFilter", "find_runs", "flow_names"]

ANY = "any"
STATUSES = [ANY, "ok", "error", "cancelled", "running", "incomplete"]

# One row per run with the status a person reads; the cancelled flag comes from the run's
# root span (the runs table stores a cancelled run as ERROR, like any other failure).
_RUNS = """
SELECT r.run_id, r.flow_name,
       CASE WHEN r.status = 'OK' THEN 'ok'
            WHEN r.status = 'ERROR' AND EXISTS (
                 SELECT 1 FROM spans c
                 WHERE c.trace_id = r.trace_id AND c.parent_id IS NULL AND c.status = 'ERROR'
                 AND json_extract_string(c.attributes, '$."workbench.run.status"') = 'cancelled')
            THEN 'cancelled'
            WHEN r.status = 'ERROR' THEN 'error'
            ELSE r.status END AS status,
       r.start_ns, (r.end_ns - r.start_ns) / 1e6 AS duration_ms, r.trace_id, r.pid, r.host
FROM runs r"""


@dataclass(frozen=True)
class RunFilter:
    """Which runs the table shows: a flow (``""``: all), a status (``any``: all) and a text
    that the run id or the flow name contains (case-insensitive; ``""``: all)."""

    flow: str = ""
    status: str = ANY
    text: str = ""

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition over ``_RUNS``' columns and its parameters."""
        if self.status not in STATUSES:
            raise ValueError(f"unknown run status {self.status!r}: one of {', '.join(STATUSES)}")
        terms, params = ["TRUE"], []
        if self.flow:
            terms.append("flow_name = ?")
            params.append(self.flow)
        if self.status != ANY:
            terms.append("status = ?")
            params.append(self.status)
        text = self.text.strip().lower()
        if text:
            # contains(), not LIKE: a % or _ typed in the box means itself
            terms.append("(contains(lower(run_id), ?) OR contains(lower(coalesce(flow_name, '')), ?))")
            params += [text, text]
        return " AND ".join(terms), params


def find_runs(store: Any, flt: RunFilter, *, limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """One page of the runs ``flt`` matches, newest first, and how many match in all.

    The page has ``run_id, flow_name, status, start_ns, duration_ms, spans`` (span count);
    a ``running`` run whose process is gone reads ``incomplete``.
    """
    where, params = flt.where()
    total = int(store.query(f"SELECT count(*) AS n FROM ({_RUNS}) WHERE {where}", params)["n"].iloc[0])
    page = store.query(
        f"SELECT m.*, (SELECT count(*) FROM spans s WHERE s.trace_id = m.trace_id) AS spans "
        f"FROM ({_RUNS}) m WHERE {where} ORDER BY start_ns DESC, run_id LIMIT ? OFFSET ?",
        [*params, int(limit), int(offset)],
    )
    mark_incomplete(page)
    return page.drop(columns=["trace_id", "pid", "host"]), total


def flow_names(store: Any) -> list[str]:
    """The names of the flows that have runs in the store, sorted."""
    df = store.query("SELECT DISTINCT flow_name FROM runs WHERE flow_name IS NOT NULL ORDER BY 1")
    return [str(n) for n in df["flow_name"]]
