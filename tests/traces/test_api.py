"""The public surface of workbench.traces is small and pinned."""

from __future__ import annotations

import workbench.traces as traces


def test_public_names_are_pinned_and_sorted() -> None:
    assert traces.__all__ == sorted(traces.__all__)
    assert traces.__all__ == [
        "EncryptionUnavailable",
        "Redactor",
        "RegexRedactor",
        "SinkClient",
        "SinkServer",
        "TraceLockedError",
        "TraceSink",
        "TraceStore",
        "TraceStoreError",
        "TraceWriter",
        "announce_sink",
        "default_db_path",
        "find_sink",
        "make_app",
        "open_store",
        "serve_sink",
        "sink_file",
        "tracer_for",
        "withdraw_sink",
    ]
    for name in traces.__all__:
        assert getattr(traces, name).__doc__, name


def test_both_tracers_satisfy_the_trace_sink_protocol(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with traces.TraceWriter(tmp_path / "t.duckdb") as w:
        assert isinstance(w, traces.TraceSink)
    client = traces.SinkClient("http://127.0.0.1:9/v1/traces")
    assert isinstance(client, traces.TraceSink)
    client.close()
