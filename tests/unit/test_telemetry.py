"""Structured logs: one JSON object per line, joined to the active trace, extras kept, probes mutable."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from modelyard.telemetry import JsonFormatter, MutedLogsFilter, muted_logs

pytestmark = pytest.mark.unit


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("modelyard.test", logging.WARNING, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_a_record_is_one_json_line_with_the_service_and_extras() -> None:
    line = JsonFormatter("registry").format(record("version %s registered", model="iris"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "modelyard.test"
    assert entry["service"] == "registry"
    assert entry["model"] == "iris"
    assert "trace_id" not in entry
    assert entry["time"].endswith("+00:00")


def test_the_active_span_ids_are_attached() -> None:
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("register") as span:
        entry = json.loads(JsonFormatter("registry").format(record("inside")))
    context = span.get_span_context()
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"


def test_exceptions_stay_on_the_same_line() -> None:
    try:
        raise ValueError("bad digest")
    except ValueError:
        entry = record("failed")
        entry.exc_info = sys.exc_info()
    line = JsonFormatter("registry").format(entry)
    assert "\n" not in line
    assert "ValueError: bad digest" in json.loads(line)["exception"]


def test_muted_logs_drop_records_only_inside_the_block(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(MutedLogsFilter())
    log = logging.getLogger("aiokafka")
    with muted_logs():
        log.error("Unable connect to 127.0.0.1:1")
    log.error("after the probe")
    assert [r.getMessage() for r in caplog.records] == ["after the probe"]
