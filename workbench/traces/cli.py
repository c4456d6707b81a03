"""``workbench traces list|show|query|export|serve``: the trace store on the command line.

``register(subparsers)`` adds the ``traces`` command to the main parser; every leaf sets
``func(args) -> int`` (the exit code) and raises ``WorkbenchError`` for anything the user
can fix. ``python -m workbench.traces.cli ...`` runs the same commands on their own.

Reads go through the sink when one owns the database (DuckDB lets no other process open
a file that is being written), else straight to the file, read-only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UsageError, WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["main", "register"]


def _store(args: argparse.Namespace) -> Any:
    from . import open_store

    return open_store(args.db, key_file=args.key_file)


def _print_frame(df: pd.DataFrame, fmt: str) -> None:
    import pandas as pd

    if fmt == "json":
        print(df.to_json(orient="records", date_format="iso"))
    elif fmt == "csv":
        df.to_csv(sys.stdout, index=False)
    elif df.empty:
        print("(no rows)")
    else:
        with pd.option_context(
            "display.max_rows",
            500,
            "display.max_columns",
            50,
            "display.width",
            200,
            "display.max_colwidth",
            60,
        ):
            print(df.to_string(index=False))


def cmd_list(args: argparse.Namespace) -> int:
    """Print the newest runs."""
    with _store(args) as store:
        df = store.runs(limit=args.limit, flow=args.flow)
    if args.json:
        _print_frame(df, "json")
    else:
        import pandas as pd

        cols = ["run_id", "flow_name", "status", "duration_ms", "spans", "start"]
        df["start"] = pd.to_datetime(df["start_ns"], unit="ns", utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
        _print_frame(df[cols], "table")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one run's spans as an indented tree, with rail verdicts."""
    with _store(args) as store:
        run_id = store.resolve_run(args.run)
        runs = store.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
        spans = store.spans(run_id)
        rails = store.rail_verdicts(run_id)
    if args.json:
        print(
            json.dumps(
                {
                    "run": json.loads(runs.to_json(orient="records"))[0],
                    "spans": json.loads(spans.drop(columns=["attributes"]).to_json(orient="records")),
                    "rails": json.loads(rails.to_json(orient="records")),
                }
            )
        )
        return 0
    run = runs.iloc[0]
    print(f"run {run_id}  flow {run['flow_name']}  status {run['status']}")
    children: dict[Any, list[Any]] = {}
    ids = set(spans["span_id"])
    for row in spans.itertuples(index=False):
        parent = row.parent_id if row.parent_id in ids else None
        children.setdefault(parent, []).append(row)

    def walk(parent: Any, depth: int) -> None:
        for row in children.get(parent, []):
            status = "" if row.status in ("OK", "UNSET") else f"  [{row.status}: {row.status_message}]"
            print(f"{row.offset_ms:10.3f} ms {'  ' * depth}{row.name}  ({row.duration_ms:.3f} ms){status}")
            walk(row.span_id, depth + 1)

    walk(None, 0)
    if len(rails):
        print("rails:")
        for r in rails.itertuples(index=False):
            try:
                us = f" ({float(r.us):.1f} us)" if float(r.us) == float(r.us) else ""  # NaN: no time
            except (TypeError, ValueError):
                us = ""
            print(f"  {r.rail} on {r.port}: {r.verdict}{us}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run one SQL query and print the result."""
    sql = args.sql if args.sql != "-" else sys.stdin.read()
    with _store(args) as store:
        _print_frame(store.query(sql), args.format)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export runs as Parquet files, an OTLP/JSON file, or OTLP to a collector."""
    runs = args.runs or None
    with _store(args) as store:
        if args.export_otlp:
            headers = dict(_header(h) for h in args.header)
            sent = store.forward_otlp(args.export_otlp, runs, headers=headers)
            print(f"sent {sent} spans to {args.export_otlp}")
            return 0
        if not args.out:
            raise UsageError("traces export needs --out PATH (or --export-otlp URL)")
        if args.format == "parquet":
            files = store.export_parquet(args.out, runs)
            print("\n".join(str(f) for f in files))
        else:
            print(store.export_otlp_json(args.out, runs))
    return 0


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--header wants NAME=VALUE, got {text!r}")
    return name, value


def cmd_serve(args: argparse.Namespace) -> int:
    """Own the database and receive OTLP/HTTP until interrupted."""
    import os

    from .sink import serve_sink

    token = args.token or os.environ.get("WORKBENCH_SINK_TOKEN")
    forward = {"forward": args.forward, "forward_headers": dict(_header(h) for h in args.header)}
    serve_sink(args.db, host=args.address, port=args.port, token=token, key_file=args.key_file, **forward)
    return 0


def _header_option(p: argparse.ArgumentParser, sender: str) -> None:
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"extra HTTP header for {sender} (repeatable)",
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``traces`` (with ``list|show|query|export|serve``) to a main parser's subparsers."""
    traces = subparsers.add_parser(
        "traces",
        help="read and export the trace store",
        description="Read, query and export the DuckDB trace store.",
    )
    sub = traces.add_subparsers(dest="traces_command", metavar="{list,show,query,export,serve}")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--db", type=Path, default=None, help="trace database (default .workbench/traces.duckdb)"
        )
        p.add_argument(
            "--key-file",
            default=None,
            help="file holding the encryption key (else WORKBENCH_TRACES_KEY / WORKBENCH_TRACES_KEY_FILE)",
        )

    p = sub.add_parser("list", help="the newest runs")
    common(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--flow", default=None, help="only runs of this flow")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("show", help="one run's spans as a tree")
    common(p)
    p.add_argument("run", nargs="?", default="latest", help="run id, a unique prefix, or 'latest'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser(
        "query",
        help="run SQL (tables: runs spans span_events rail_verdicts decode_steps; "
        "views: node_latency model_calls rail_violation_rates slowest_runs)",
    )
    common(p)
    p.add_argument("sql", help="one SELECT statement ('-' reads it from stdin)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(handler=cmd_query)

    p = sub.add_parser("export", help="export runs to Parquet, OTLP/JSON or a collector")
    common(p)
    p.add_argument("runs", nargs="*", help="run ids or prefixes (default: everything)")
    p.add_argument("--format", choices=["parquet", "otlp-json"], default="parquet")
    p.add_argument("--out", default=None, help="folder (parquet) or file (otlp-json)")
    p.add_argument(
        "--export-otlp",
        metavar="URL",
        default=None,
        help="send OTLP/HTTP protobuf to a collector, e.g. http://localhost:4318/v1/traces",
    )
    _header_option(p, "--export-otlp")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("serve", help="own the database and receive OTLP/HTTP at /v1/traces")
    common(p)
    p.add_argument("--address", default="127.0.0.1", help="bind address (non-loopback needs --token)")
    p.add_argument("--port", type=int, default=4318)
    p.add_argument(
        "--token", default=None, help="bearer token required on every request (else WORKBENCH_SINK_TOKEN)"
    )
    p.add_argument(
        "--forward",
        metavar="URL",
        help="also send every stored batch to this OTLP/HTTP collector (e.g. http://host:4318/v1/traces)",
    )
    _header_option(p, "--forward")
    p.set_defaults(handler=cmd_serve)
    return traces


def main(argv: list[str] | None = None) -> int:
    """Run ``traces ...`` on its own (the main ``workbench`` command does the same)."""
    parser = argparse.ArgumentParser(prog="workbench")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
