"""OTLP trace payloads <-> ``Span`` objects (protobuf and the OTLP/JSON encoding).

Both encodings go through the generated protobuf classes of ``opentelemetry-proto``: JSON
is parsed into the same message (after OTLP/JSON's hex ids are turned into the bytes
protobuf expects), so there is one validation path. Validation is strict and total: a
payload is decoded completely before anything is stored, and any problem raises
``OTLPDecodeError`` with a reason the receiver returns as HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workbench.spans import Span, SpanEvent

from .convert import Origin

__all__ = [
    "OTLPDecodeError",
    "decode_json",
    "decode_protobuf",
    "encode_json",
    "encode_protobuf",
    "to_request",
]

_KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
_KIND_CODE = {k: i for i, k in enumerate(_KINDS)}
_STATUS = ["UNSET", "OK", "ERROR"]
_STATUS_CODE = {s: i for i, s in enumerate(_STATUS)}


class OTLPDecodeError(ValueError):
    """A payload that is not a valid OTLP trace export request; the message says why."""


def _pb() -> Any:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "OTLP needs the opentelemetry-proto package: pip install 'agent-workbench[otel]'"
        ) from exc
    return trace_service_pb2


# -- decoding --------------------------------------------------------------------------
def _any_value(v: Any, depth: int = 0) -> Any:
    if depth > 16:
        raise OTLPDecodeError("attribute value nested too deeply")
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(x, depth + 1) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _hex_id(raw: bytes, size: int, what: str, *, optional: bool = False) -> str | None:
    if not raw and optional:
        return None
    if len(raw) != size:
        raise OTLPDecodeError(f"{what} must be {size} bytes, got {len(raw)}")
    if raw == bytes(size):
        if optional:
            return None
        raise OTLPDecodeError(f"{what} is all zeros (invalid)")
    return raw.hex()


def from_request(request: Any) -> list[tuple[Origin, list[Span]]]:
    """Spans of a parsed ``ExportTraceServiceRequest``, grouped by resource (validated)."""
    out: list[tuple[Origin, list[Span]]] = []
    for rs in request.resource_spans:
        origin = Origin.from_resource(_attrs(rs.resource.attributes))
        spans: list[Span] = []
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for ps in ss.spans:
                trace_id = _hex_id(ps.trace_id, 16, "traceId")
                assert trace_id is not None
                span_id = _hex_id(ps.span_id, 8, "spanId")
                assert span_id is not None
                parent = _hex_id(ps.parent_span_id, 8, "parentSpanId", optional=True)
                if ps.start_time_unix_nano >= 2**63 or ps.end_time_unix_nano >= 2**63:
                    raise OTLPDecodeError(f"span {span_id}: time beyond the year 2262 (int64 nanoseconds)")
                if ps.start_time_unix_nano <= 0:
                    raise OTLPDecodeError(f"span {span_id}: startTimeUnixNano missing")
                if ps.end_time_unix_nano and ps.end_time_unix_nano < ps.start_time_unix_nano:
                    raise OTLPDecodeError(f"span {span_id}: ends before it starts")
                if ps.kind >= len(_KINDS) or ps.status.code >= len(_STATUS):
                    raise OTLPDecodeError(f"span {span_id}: unknown kind or status code")
                attributes = _attrs(ps.attributes)
                if scope and "otel.scope.name" not in attributes:
                    attributes["otel.scope.name"] = scope
                spans.append(
                    Span(
                        name=ps.name,
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_id=parent,
                        start_ns=ps.start_time_unix_nano,
                        kind=_KINDS[ps.kind],
                        attributes=attributes,
                        events=[SpanEvent(e.name, e.time_unix_nano, _attrs(e.attributes)) for e in ps.events],
                        end_ns=ps.end_time_unix_nano,
                        status=_STATUS[ps.status.code],
                        status_message=ps.status.message or None,
                    )
                )
        if spans:
            out.append((origin, spans))
    return out


def decode_protobuf(body: bytes) -> list[tuple[Origin, list[Span]]]:
    """Decode an ``application/x-protobuf`` OTLP trace request."""
    from google.protobuf.message import DecodeError

    request = _pb().ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise OTLPDecodeError(f"invalid protobuf: {exc}") from None
    try:
        return from_request(request)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise OTLPDecodeError(f"invalid protobuf content: {exc}") from None


def _ids_hex_to_b64(node: Any, depth: int = 0) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64: convert in place."""
    if depth > 64:
        raise OTLPDecodeError("JSON nested too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                if not isinstance(value, str):
                    raise OTLPDecodeError(f"{key} must be a hex string")
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise OTLPDecodeError(f"{key} is not hex: {value[:40]!r}") from None
            else:
                _ids_hex_to_b64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _ids_hex_to_b64(item, depth + 1)
    return node


def decode_json(body: bytes | str) -> list[tuple[Origin, list[Span]]]:
    """Decode an ``application/json`` (OTLP/JSON) trace request."""
    from google.protobuf import json_format

    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise OTLPDecodeError(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OTLPDecodeError("an OTLP/JSON request must be a JSON object")
    request = _pb().ExportTraceServiceRequest()
    doc = _ids_hex_to_b64(doc)
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise OTLPDecodeError(f"not an OTLP trace request: {str(exc)[:300]}") from None
    return from_request(request)


# -- encoding --------------------------------------------------------------------------
def _set_any(target: Any, value: Any, depth: int = 0) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if -(2**63) <= value < 2**63:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, Mapping) and depth < 8:
        for k, v in value.items():
            if v is not None:
                kv = target.kvlist_value.values.add()
                kv.key = str(k)
                _set_any(kv.value, v, depth + 1)
        if not value:
            target.kvlist_value.SetInParent()
    elif isinstance(value, list | tuple) and depth < 8:
        target.array_value.SetInParent()
        for v in value:
            _set_any(target.array_value.values.add(), v, depth + 1)
    else:
        target.string_value = str(value)


def _set_attrs(container: Any, attributes: Mapping[str, Any]) -> None:
    for k, v in attributes.items():
        if v is not None:
            kv = container.add()
            kv.key = k
            _set_any(kv.value, v)


def to_request(groups: Sequence[tuple[Mapping[str, Any], Sequence[Span]]], scope: str = "workbench") -> Any:
    """An ``ExportTraceServiceRequest`` for spans grouped by resource attributes."""
    request = _pb().ExportTraceServiceRequest()
    for resource, spans in groups:
        rs = request.resource_spans.add()
        _set_attrs(rs.resource.attributes, resource)
        ss = rs.scope_spans.add()
        ss.scope.name = scope
        for s in spans:
            ps = ss.spans.add()
            ps.trace_id = bytes.fromhex(s.trace_id)
            ps.span_id = bytes.fromhex(s.span_id)
            if s.parent_id:
                ps.parent_span_id = bytes.fromhex(s.parent_id)
            ps.name = s.name
            ps.kind = _KIND_CODE.get(s.kind, 1)
            ps.start_time_unix_nano = s.start_ns
            ps.end_time_unix_nano = s.end_ns
            _set_attrs(ps.attributes, s.attributes)
            for e in s.events:
                pe = ps.events.add()
                pe.name = e.name
                pe.time_unix_nano = e.time_ns
                _set_attrs(pe.attributes, e.attributes)
            ps.status.code = _STATUS_CODE.get(s.status, 0)
            if s.status_message:
                ps.status.message = s.status_message
    return request


def encode_protobuf(groups: Sequence[tuple[Mapping[str, Any], Sequence[Span]]]) -> bytes:
    """OTLP protobuf bytes for spans grouped by resource attributes."""
    return bytes(to_request(groups).SerializeToString())


def _ids_b64_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                with contextlib.suppress(binascii.Error):
                    node[key] = base64.b64decode(value).hex()
            else:
                _ids_b64_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_b64_to_hex(item)
    return node


def encode_json(groups: Sequence[tuple[Mapping[str, Any], Sequence[Span]]]) -> dict[str, Any]:
    """The OTLP/JSON document (hex ids, integer enums) for spans grouped by resource."""
    from google.protobuf import json_format

    doc = json_format.MessageToDict(to_request(groups), use_integers_for_enums=True)
    return _ids_b64_to_hex(doc)
