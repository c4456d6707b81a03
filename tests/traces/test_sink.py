"""The OTLP/HTTP sink on loopback: the real OpenTelemetry SDK exporter, clients, limits, fuzzing."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import UsageError
from workbench.spans import MemoryTracer
from workbench.traces import (
    SinkClient,
    SinkServer,
    TraceStore,
    TraceWriter,
    find_sink,
    open_store,
    tracer_for,
)
from workbench.traces.otlp import encode_json, encode_protobuf

from .helpers import record_run


@pytest.fixture
def sink(db: Path) -> Iterator[SinkServer]:
    with SinkServer(db) as server:
        yield server


def _count(sink: SinkServer, table: str = "spans") -> int:
    assert sink.writer is not None
    sink.writer.flush()
    return int(sink.writer.store().query(f"SELECT count(*) n FROM {table}")["n"][0])


def _payload() -> list[tuple[dict[str, object], list[object]]]:
    mem = MemoryTracer()
    record_run(mem, "sent-run", nodes=2)
    return [({"service.name": "other-app", "process.pid": os.getpid()}, mem.spans)]  # type: ignore[list-item]


def test_the_opentelemetry_sdk_exporter_sends_to_the_sink(sink: SinkServer) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "vllm-like"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=sink.url), max_queue_size=10_000)
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat llama") as outer:
        outer.set_attribute("gen_ai.request.model", "llama")
        outer.set_attribute("gen_ai.usage.output_tokens", 42)
        outer.add_event("first token", {"ms": 12.5})
        for i in range(50):
            with tracer.start_as_current_span(f"step {i}"):
                pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert sink.writer is not None
    sink.writer.flush()
    store = sink.writer.store()
    spans = store.query("SELECT * FROM spans ORDER BY start_ns")
    assert len(spans) == 51
    assert set(spans["service"]) == {"vllm-like"}
    outer_row = spans[spans["name"] == "chat llama"].iloc[0]
    assert outer_row["model"] == "llama" and outer_row["output_tokens"] == 42
    assert (spans["parent_id"] == outer_row["span_id"]).sum() == 50
    assert store.events()["name"].tolist() == ["first token"]
    assert store.model_calls()["tokens_per_s"].iloc[0] > 0


def test_json_and_gzip_encodings(sink: SinkServer) -> None:
    body = json.dumps(encode_json(_payload())).encode()
    r = httpx.post(sink.url, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json() == {}
    r = httpx.post(
        sink.url,
        content=gzip.compress(encode_protobuf(_payload())),  # type: ignore[arg-type]
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200
    assert _count(sink) == 2 * 5
    runs = sink.writer.store().runs()  # type: ignore[union-attr]
    assert runs["run_id"].tolist() == ["sent-run"] and runs["service"][0] == "other-app"


@pytest.mark.parametrize(
    ("body", "ctype", "status", "reason"),
    [
        (b"\xff\xff\xff", "application/x-protobuf", 400, "invalid protobuf"),
        (b"{not json", "application/json", 400, "invalid JSON"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "00", "spanId": "01"}]}]}]}',
            "application/json",
            400,
            "traceId must be 16 bytes",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",'
            b' "spanId": "eee19b7ec3c1b174", "name": "no start"}]}]}]}',
            "application/json",
            400,
            "startTimeUnixNano",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",'
            b' "spanId": "eee19b7ec3c1b174", "name": "far",'
            b' "startTimeUnixNano": "18446744073709551615"}]}]}]}',
            "application/json",
            400,
            "year 2262",
        ),
        (b"hello", "text/plain", 415, "unsupported content type"),
    ],
)
def test_malformed_payloads_get_4xx_with_a_reason_and_store_nothing(
    sink: SinkServer, body: bytes, ctype: str, status: int, reason: str
) -> None:
    r = httpx.post(sink.url, content=body, headers={"Content-Type": ctype})
    assert r.status_code == status
    assert reason in r.json()["message"]
    assert _count(sink) == 0


def test_a_bad_span_anywhere_rejects_the_whole_request(sink: SinkServer) -> None:
    doc = encode_json(_payload())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][-1]["spanId"] = "zz"
    r = httpx.post(sink.url, json=doc)
    assert r.status_code == 400 and "spanId is not hex" in r.json()["message"]
    assert _count(sink) == 0 and _count(sink, "runs") == 0


def test_size_limits(db: Path) -> None:
    with SinkServer(db, max_body=2000) as sink:
        big = encode_protobuf(_payload() * 10)  # type: ignore[arg-type]
        r = httpx.post(sink.url, content=big, headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 413
        bomb = gzip.compress(b"\x00" * 1_000_000)
        r = httpx.post(
            sink.url,
            content=bomb,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 413 and "decompressed" in r.json()["message"]
        assert _count(sink) == 0


def test_non_loopback_needs_a_token_and_tokens_are_checked(db: Path) -> None:
    with pytest.raises(UsageError, match="not loopback"):
        SinkServer(db, host="0.0.0.0")
    with SinkServer(db, token="s3cret") as sink:
        body = encode_protobuf(_payload())  # type: ignore[arg-type]
        headers = {"Content-Type": "application/x-protobuf"}
        assert httpx.post(sink.url, content=body, headers=headers).status_code == 401
        wrong = {**headers, "Authorization": "Bearer nope"}
        assert httpx.post(sink.url, content=body, headers=wrong).status_code == 401
        right = {**headers, "Authorization": "Bearer s3cret"}
        assert httpx.post(sink.url, content=body, headers=right).status_code == 200
        # tracer_for finds the sink and its token through the announcement file
        with tracer_for(db) as t:
            assert isinstance(t, SinkClient)
            record_run(t, "with-token", nodes=1)
        assert set(open_store(db).runs()["run_id"]) == {"sent-run", "with-token"}


def test_the_query_endpoint_answers_selects_only_with_its_token(sink: SinkServer) -> None:
    info = find_sink(sink.db_path)
    assert info is not None and info["pid"] == os.getpid()
    store = TraceStore.remote(sink.url, info["query_token"])
    assert store.query("SELECT 41 + 1 AS x")["x"][0] == 42
    with pytest.raises(Exception, match="only a single SELECT"):
        store.query("DROP TABLE spans")
    with pytest.raises(Exception, match="bearer token"):
        TraceStore.remote(sink.url, "wrong").query("SELECT 1")
    with pytest.raises(Exception, match="file system operations are disabled"):
        store.query("SELECT * FROM read_text('/etc/hostname')")
    assert len(store.query("SELECT * FROM spans")) == 0  # the trace file itself still works


def test_a_client_run_is_running_then_ok_and_the_sink_file_goes_away(sink: SinkServer) -> None:
    with tracer_for(sink.db_path) as t:
        assert isinstance(t, SinkClient)
        root = record_run(t, "remote-run", nodes=2, end=False)
        t.flush()
        store = open_store(sink.db_path)
        assert store.runs()["status"].tolist() == ["running"]
        t.end_span(root)
    assert store.runs()["status"].tolist() == ["OK"]
    assert len(store.spans("remote-run")) == 5
    sink.close()
    assert find_sink(sink.db_path) is None
    assert not (sink.db_path.parent / "traces.duckdb.sink.json").exists()


def test_a_sink_that_goes_away_mid_run_is_reported_and_the_client_takes_over(db: Path) -> None:
    sink = SinkServer(db).start()
    client = tracer_for(db)
    assert isinstance(client, SinkClient)
    root = record_run(client, "survivor", nodes=2, end=False)
    client.flush()
    sink.close()  # the server process "goes away"
    for i in range(3):
        client.end_span(client.start_span(f"after {i}", parent=root))
    client.end_span(root)
    client.close()
    assert any("gone" in p for p in client.stats.problems)
    assert client.stats.dropped == 0
    with TraceStore(db) as store:
        assert store.runs()["status"].tolist() == ["OK"]
        assert len(store.spans("survivor")) == 5 + 3


def test_a_client_without_a_fallback_counts_what_it_cannot_deliver() -> None:
    with pytest.warns(RuntimeWarning, match="dropped"):
        client = SinkClient("http://127.0.0.1:9/v1/traces", retries=1)
        client.end_span(client.start_span("lost"))
        client.close()
    assert client.stats.dropped == 1
    assert any("unreachable" in p for p in client.stats.problems)


def test_workbench_sink_env_wins(sink: SinkServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_SINK", sink.url)
    with tracer_for(tmp_path / "elsewhere.duckdb") as t:
        assert isinstance(t, SinkClient)
        record_run(t, "via-env", nodes=1)
    assert not (tmp_path / "elsewhere.duckdb").exists()
    assert open_store(sink.db_path).runs()["run_id"].tolist() == ["via-env"]


def test_the_sink_is_healthy_after_garbage(sink: SinkServer) -> None:
    for body in (b"\x0a\x05\x0a\x03\x0a\x01", b"\x00" * 64, b'{"resourceSpans": [{"resource": 7}]}'):
        httpx.post(sink.url, content=body, headers={"Content-Type": "application/x-protobuf"})
    assert httpx.get(sink.url.replace("/v1/traces", "/healthz")).json()["ok"]


def test_a_second_sink_on_an_owned_file_is_refused(sink: SinkServer) -> None:
    with pytest.raises(Exception, match="already has it open"):
        TraceWriter(sink.db_path)


_fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceSpans",
                    "scopeSpans",
                    "spans",
                    "traceId",
                    "spanId",
                    "name",
                    "attributes",
                    "key",
                    "value",
                    "startTimeUnixNano",
                    "endTimeUnixNano",
                    "events",
                    "status",
                    "code",
                    "kind",
                    "resource",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:  # one keep-alive connection for the many fuzz requests
        yield client


@_fuzz
@given(body=st.binary(max_size=512))
def test_fuzzed_protobuf_never_crashes_the_sink(sink: SinkServer, http: httpx.Client, body: bytes) -> None:
    r = http.post(sink.url, content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["message"]


@_fuzz
@given(doc=_json_values)
def test_fuzzed_json_never_crashes_the_sink(sink: SinkServer, http: httpx.Client, doc: object) -> None:
    r = http.post(sink.url, content=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400), r.text


@_fuzz
@given(
    trace_id=st.binary(max_size=20),
    span_id=st.binary(max_size=10),
    parent=st.binary(max_size=10),
    start=st.integers(min_value=0, max_value=2**64 - 1),
    end=st.integers(min_value=0, max_value=2**64 - 1),
    kind=st.integers(min_value=0, max_value=2**31 - 1),
    code=st.integers(min_value=0, max_value=2**31 - 1),
    name=st.text(max_size=30),
    value=st.one_of(st.text(max_size=10), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats()),
)
def test_fuzzed_well_formed_protobuf_is_stored_whole_or_refused_whole(
    sink: SinkServer,
    http: httpx.Client,
    trace_id: bytes,
    span_id: bytes,
    parent: bytes,
    start: int,
    end: int,
    kind: int,
    code: int,
    name: str,
    value: object,
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add()  # a valid span beside the fuzzed one: all or nothing of the request
    good.trace_id, good.span_id, good.name = b"\x01" * 16, b"\x02" * 8, "good"
    good.start_time_unix_nano, good.end_time_unix_nano = 10, 20
    bad = spans.add()
    bad.trace_id, bad.span_id, bad.parent_span_id, bad.name = trace_id, span_id, parent, name
    bad.start_time_unix_nano, bad.end_time_unix_nano = start, end
    bad.kind, bad.status.code = kind, code  # type: ignore[assignment]
    attr = bad.attributes.add()
    attr.key = "v"
    if isinstance(value, str):
        attr.value.string_value = value
    elif isinstance(value, int):
        attr.value.int_value = value
    else:
        attr.value.double_value = value  # type: ignore[assignment]
    before = _count(sink)
    r = http.post(
        sink.url, content=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    assert r.status_code in (200, 400), r.text
    stored = _count(sink) - before
    assert stored == (2 if r.status_code == 200 else 0) or (r.status_code == 200 and end == 0 and stored == 1)


_OPTIMIZED_SINK = """
import json, sys
from workbench.traces import SinkServer
server = SinkServer(sys.argv[1], announce=False).start()
info = {"url": server.url, "token": server.query_token, "optimize": sys.flags.optimize}
print(json.dumps(info), flush=True)
sys.stdin.read()
server.close()
"""


def test_malformed_requests_are_refused_with_4xx_under_python_O(db: Path) -> None:
    """Validation is explicit, not ``assert``: ``python -O`` strips asserts."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-O", "-c", _OPTIMIZED_SINK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert info["optimize"] == 1
        url, query = info["url"], info["url"].replace("/v1/traces", "/v1/query")
        auth = {"Authorization": f"Bearer {info['token']}"}
        garbage = httpx.post(url, content=b"\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"})
        assert garbage.status_code == 400 and "invalid protobuf" in garbage.json()["message"]
        span = {"traceId": "0" * 32, "spanId": "0" * 16}
        r = httpx.post(url, json={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
        assert r.status_code == 400 and "all zeros" in r.json()["message"]
        for doc in ({"sql": 5}, {"sql": "SELECT 1", "params": "x"}, ["SELECT 1"], {"params": []}):
            r = httpx.post(query, json=doc, headers=auth)
            assert r.status_code == 400, (doc, r.status_code, r.text)
            assert r.json()["message"] == 'expected JSON {"sql": "...", "params": [...]}'
        assert httpx.post(query, json={"sql": "SELECT 1 AS x"}, headers=auth).status_code == 200
    finally:
        proc.communicate("", timeout=30)
    assert proc.returncode == 0
