"""Traces, metrics and logs for one service process.

OpenTelemetry providers carry the resource `service.name`; they export over OTLP gRPC only when an endpoint is
configured, so a laptop run needs no collector. Logs are one JSON object per line on stderr, with the active
span's trace and span ids, so a log line can be joined to its trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from modelyard.settings import ServiceSettings

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth printing.
# uvicorn's color_message duplicates the message with terminal escapes.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}

_muted: contextvars.ContextVar[bool] = contextvars.ContextVar("modelyard_logs_muted", default=False)
_lock = threading.Lock()
_providers: tuple[TracerProvider, MeterProvider] | None = None
_providers_shut_down = False
_handler: logging.Handler | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, service, trace ids, extras, exception."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class MutedLogsFilter(logging.Filter):
    """Lets a record through unless it was emitted inside `muted_logs()` (CRITICAL always passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _muted.get() or record.levelno >= logging.CRITICAL


@contextlib.contextmanager
def muted_logs() -> Iterator[None]:
    """Drop log records (below CRITICAL) emitted from the current task while inside the block.

    For probes whose failures are expected and reported once by the caller, e.g. a readiness check against a
    broker that is down: aiokafka would otherwise log an ERROR on every attempt.
    """
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON lines. Calling it again only changes the level."""
    global _handler
    root = logging.getLogger()
    root.setLevel(level.upper())
    with _lock:
        if _handler is not None:
            return
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(JsonFormatter(service))
        _handler.addFilter(MutedLogsFilter())
        for existing in list(root.handlers):
            root.removeHandler(existing)
        root.addHandler(_handler)


class _Tagged(logging.Filter):
    def __init__(self, fields: dict[str, object]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            setattr(record, key, value)
        return True


def tag_logs(**fields: object) -> None:
    """Add `fields` to every log line of this process (a worker process's number, say)."""
    if _handler is not None:
        _handler.addFilter(_Tagged(fields))


def setup_telemetry(settings: ServiceSettings) -> None:
    """Logging plus global tracer and meter providers for `settings.service_name`; idempotent per process.

    OpenTelemetry allows one global provider per process, so a later call (tests running several services in
    one process, or after `shutdown_telemetry`) keeps the first service's providers.
    """
    global _providers
    configure_logging(settings.service_name, settings.log_level)
    with _lock:
        if _providers is not None:
            return
        resource = Resource.create({SERVICE_NAME: settings.service_name})
        tracer_provider = TracerProvider(resource=resource)
        readers: list[MetricReader] = []
        if settings.otlp_endpoint:
            # Imported here: the exporters pull in their own gRPC channel machinery, unused without a collector.
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(settings.otlp_endpoint)))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _providers = (tracer_provider, meter_provider)


def shutdown_telemetry(timeout_s: float = 5.0) -> None:
    """Flush pending spans and metrics (bounded by `timeout_s` each) and stop the exporters; once per process."""
    global _providers_shut_down
    with _lock:
        if _providers is None or _providers_shut_down:
            return
        _providers_shut_down = True
    tracer_provider, meter_provider = _providers
    tracer_provider.force_flush(int(timeout_s * 1000))
    tracer_provider.shutdown()
    meter_provider.shutdown(timeout_millis=timeout_s * 1000)
