"""The trace store's schema: versioned migrations, table layouts and the analysis views.

Tables (one row each per ...):

- ``runs``: flow run (from a run's root span; written at start as ``running`` so a run
  whose process died is found later and shown as ``incomplete``).
- ``spans``: ended span, OpenTelemetry-shaped, with the attributes people group by most
  (node, model, token counts) lifted out of the JSON ``attributes`` into columns.
- ``span_events``: event of a span, except the two kinds below, which get tables of their own.
- ``rail_verdicts``: rail check (a GUARDRAIL span or an event carrying ``workbench.rail.name``).
- ``decode_steps``: generated token (an event named ``workbench.decode.step``).
- ``resources``: OpenTelemetry resource (the sending program: service name, pid, host),
  stored once and referenced by ``spans.resource_id``.
- ``drops``: spans the writer could not store (never silent: counted here and warned about).

Migrations are a list of SQL scripts; ``schema_version`` records which ran. A new schema
version appends a script and never edits an old one, so any older file upgrades in place.
A column added later goes last in its table's ``TABLES`` entry (``ALTER TABLE`` appends, and
the writer inserts by position) and into ``_LATER``, which keeps version 1's script as it was.
Views are recreated by every writer that opens the file (they hold no data).
"""

from __future__ import annotations

import time

import duckdb

__all__ = ["SCHEMA_VERSION", "TABLES", "VIEWS", "current_version", "migrate"]

# Column order of each table: the writer builds Arrow batches in exactly this order.
TABLES: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "VARCHAR PRIMARY KEY"),
        ("trace_id", "VARCHAR"),
        ("flow_name", "VARCHAR"),
        ("flow_hash", "VARCHAR"),
        ("status", "VARCHAR"),  # running | OK | ERROR | cancelled | incomplete
        ("status_message", "VARCHAR"),
        ("start_ns", "BIGINT"),
        ("end_ns", "BIGINT"),
        ("inputs", "JSON"),
        ("outputs", "JSON"),
        ("pid", "BIGINT"),
        ("host", "VARCHAR"),
        ("service", "VARCHAR"),
    ],
    "spans": [
        ("trace_id", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("parent_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("span_kind", "VARCHAR"),  # openinference.span.kind: CHAIN, LLM, TOOL, GUARDRAIL...
        ("node", "VARCHAR"),
        ("model", "VARCHAR"),
        ("input_tokens", "BIGINT"),
        ("output_tokens", "BIGINT"),
        ("start_ns", "BIGINT"),
        ("end_ns", "BIGINT"),
        ("duration_ns", "BIGINT"),
        ("status", "VARCHAR"),
        ("status_message", "VARCHAR"),
        ("attributes", "JSON"),
        ("service", "VARCHAR"),
        ("resource_id", "VARCHAR"),
    ],
    "resources": [
        ("resource_id", "VARCHAR PRIMARY KEY"),  # a hash of the attributes
        ("service", "VARCHAR"),
        ("attributes", "JSON"),
    ],
    "span_events": [
        ("trace_id", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("seq", "INTEGER"),
        ("name", "VARCHAR"),
        ("time_ns", "BIGINT"),
        ("attributes", "JSON"),
    ],
    "rail_verdicts": [
        ("trace_id", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("node", "VARCHAR"),
        ("rail", "VARCHAR"),
        ("port", "VARCHAR"),
        ("verdict", "VARCHAR"),  # pass | fail
        ("enforce", "VARCHAR"),  # block | repair | decode | observe
        ("us", "DOUBLE"),
        ("time_ns", "BIGINT"),
        ("message", "VARCHAR"),
    ],
    "decode_steps": [
        ("trace_id", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("token", "VARCHAR"),
        ("token_id", "BIGINT"),
        ("logprob", "DOUBLE"),
        ("allowed", "BIGINT"),  # tokens the mask allowed at this step
        ("rails", "VARCHAR"),  # rails that shaped the mask, comma-separated
        ("time_ns", "BIGINT"),
        # version 2 (ALTER TABLE appends, so columns added later come last)
        ("schema_allowed", "BIGINT"),  # tokens the answer's grammar allowed, before the rails
        ("removed", "JSON"),  # texts of the first tokens the rails removed (a list)
    ],
    "drops": [
        ("time_ns", "BIGINT"),
        ("pid", "BIGINT"),
        ("dropped", "BIGINT"),
        ("reason", "VARCHAR"),
    ],
}

# The questions people ask first, as views (DuckDB binds them at query time, so they
# always see the newest rows). Durations are reported in milliseconds.
VIEWS: dict[str, str] = {
    "node_latency": """
        SELECT node, calls, q[1] / 1e6 AS p50_ms, q[2] / 1e6 AS p95_ms, q[3] / 1e6 AS p99_ms,
               mean_ms, max_ms, errors
        FROM (
          -- one quantile aggregate with a list of fractions sorts each group once, not three times
          SELECT node, count(*) AS calls, quantile_cont(duration_ns, [0.5, 0.95, 0.99]) AS q,
                 avg(duration_ns) / 1e6 AS mean_ms, max(duration_ns) / 1e6 AS max_ms,
                 count(*) FILTER (WHERE status = 'ERROR') AS errors
          FROM spans WHERE node IS NOT NULL GROUP BY node)""",
    "model_calls": """
        SELECT trace_id, span_id, node, model, name, input_tokens, output_tokens,
               duration_ns / 1e6 AS duration_ms,
               CASE WHEN duration_ns > 0 AND output_tokens IS NOT NULL
                    THEN output_tokens / (duration_ns / 1e9) END AS tokens_per_s
        FROM spans WHERE model IS NOT NULL OR span_kind = 'LLM'""",
    "rail_violation_rates": """
        SELECT rail, port, count(*) AS checks,
               count(*) FILTER (WHERE verdict = 'fail') AS violations,
               count(*) FILTER (WHERE verdict = 'fail') / count(*) AS violation_rate,
               avg(us) AS mean_us
        FROM rail_verdicts GROUP BY rail, port""",
    "slowest_runs": """
        SELECT run_id, flow_name, status, (end_ns - start_ns) / 1e6 AS duration_ms, start_ns
        FROM runs WHERE end_ns IS NOT NULL ORDER BY end_ns - start_ns DESC""",
}

# Columns a later version added, by table: version 1 created each table without them.
_LATER: dict[str, dict[str, int]] = {"decode_steps": {"schema_allowed": 2, "removed": 2}}

_V1 = [
    f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in cols if c not in _LATER.get(name, {}))})"
    for name, cols in TABLES.items()
]


def _added(version: int) -> list[str]:
    """The ``ALTER TABLE`` statements of the columns ``version`` added (in ``TABLES`` order)."""
    return [
        f"ALTER TABLE {name} ADD COLUMN {col} {typ}"
        for name, cols in TABLES.items()
        for col, typ in cols
        if _LATER.get(name, {}).get(col) == version
    ]


# MIGRATIONS[i] upgrades a file from version i to version i + 1.
MIGRATIONS: list[list[str]] = [_V1, _added(2)]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version recorded in the open database (0 for an empty file)."""
    has = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'schema_version' AND table_catalog = current_database()"
    ).fetchone()
    if not has or not has[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the open database up to ``SCHEMA_VERSION``; returns the version it had before.

    Each step runs in one transaction, so a crash mid-migration leaves the old version.
    A file newer than this code is refused rather than guessed at.
    """
    before = current_version(con)
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"trace database has schema version {before}, newer than this workbench ({SCHEMA_VERSION}); "
            "upgrade agent-workbench to read it"
        )
    if before == 0:
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_ns BIGINT)")
    for version in range(before, SCHEMA_VERSION):
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version + 1, time.time_ns()])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    # Views hold no data: every writer refreshes them, so a better view needs no migration.
    for name, sql in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    return before
