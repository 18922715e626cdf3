"""An in-memory OTLP/gRPC receiver: the span exporter for tests of services that run as processes.

Spans leave a service process only over OTLP, so a test points the services' `OTLP_ENDPOINT` at `endpoint` and
reads what they exported from `spans`. Metrics are accepted and discarded (the services export both).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


@dataclass(frozen=True)
class ReceivedLink:
    trace_id: bytes
    span_id: bytes
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name
    name: str
    trace_id: bytes
    span_id: bytes
    parent_id: bytes  # b"" for a root span
    links: tuple[ReceivedLink, ...]
    attributes: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.service}:{self.name}"


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None


def _attributes(attributes: Any) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in attributes}


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self.receiver._add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver:
    """Spans exported to `endpoint`, by span id."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._spans: dict[bytes, ReceivedSpan] = {}
        self._lock = threading.Lock()

    @property
    def spans(self) -> dict[bytes, ReceivedSpan]:
        with self._lock:
            return dict(self._spans)

    def related(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        """The spans `span` hangs on: its parent and the spans it links to (those that were received)."""
        spans = self.spans
        ids = (span.parent_id, *(link.span_id for link in span.links))
        return [spans[i] for i in ids if i in spans]

    def _add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "?")
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    links = tuple(ReceivedLink(k.trace_id, k.span_id, _attributes(k.attributes)) for k in s.links)
                    received.append(
                        ReceivedSpan(
                            service, s.name, s.trace_id, s.span_id, s.parent_span_id, links, _attributes(s.attributes)
                        )
                    )
        with self._lock:
            self._spans.update((span.span_id, span) for span in received)


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A receiver listening on a free loopback port for as long as the block runs."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    port = server.add_insecure_port("127.0.0.1:0")
    receiver = OtlpReceiver(f"http://127.0.0.1:{port}")
    # opentelemetry-proto's generated gRPC modules have no type hints.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(), server)  # type: ignore[no-untyped-call]
    server.start()
    try:
        yield receiver
    finally:
        server.stop(grace=5).wait()
