"""One trace through the loop (issue 7, item 2): a prediction call, its record on the stream, the monitor's window
that used it, the alert and the rollback, linked by parent/child or span links across Kafka headers.

The services run as processes (the demo's stack, through `run_demo`), so the in-memory span exporter is an OTLP/gRPC
receiver in this process that every service exports to (`--env SERVICE.otlp_endpoint=...`). Spans are flushed
when a service stops, and `run_demo` returns once every service has stopped, so everything is there by then.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelyard.cli.demo import run_demo
from modelyard.cli.demo_timeline import ROLLBACK_STEPS
from modelyard.cli.stack import SERVICES
from modelyard.cli.up import StackOptions
from modelyard.kafka.embedded import free_port
from modelyard.testing.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver

pytestmark = pytest.mark.e2e

ROLLBACK = "modelyard.events.v1.RollbackOrdered"
INCIDENT = "modelyard.events.v1.IncidentChanged"
LINK_LIMIT = 128  # OpenTelemetry's default span link limit: a link past it would be dropped silently


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


# One hop back along the trace: how the later span hangs on the earlier one, and what the earlier one is.
Hop = tuple[str, str, str, Callable[[ReceivedSpan], bool]]


def _any(span: ReceivedSpan) -> bool:
    return True


def _event(event_type: str) -> Callable[[ReceivedSpan], bool]:
    return lambda span: span.attributes.get("cloudevents.event_type") == event_type


# From serving enacting the rollback back to the prediction call.
CHAIN: list[Hop] = [
    ("parent", "governance", "send modelyard.governance.decisions", _event(ROLLBACK)),
    ("parent", "governance", "process modelyard.monitor.alerts", _event(INCIDENT)),
    ("parent", "monitor", "send modelyard.monitor.alerts", _event(INCIDENT)),
    ("parent", "monitor", "evaluate window", _any),
    ("parent or link", "monitor", "process modelyard.serving.predictions", _any),
    ("parent", "serving", "send modelyard.serving.predictions", _any),
    ("parent", "serving", "create modelyard.serving.predictions", _any),
    ("link", "serving", "ModelInfer", _any),
]


def hops_back(receiver: OtlpReceiver, span: ReceivedSpan, how: str) -> list[ReceivedSpan]:
    spans = receiver.spans
    ids = []
    if "parent" in how:
        ids.append(span.parent_id)
    if "link" in how:
        ids += [link.span_id for link in span.links]
    return [spans[i] for i in ids if i in spans]


def chains(receiver: OtlpReceiver, start: ReceivedSpan) -> list[list[ReceivedSpan]]:
    """Every path from `start` that follows CHAIN to its end (at most a few: fan-in happens only at links)."""
    paths = [[start]]
    for how, service, name, wanted in CHAIN:
        longer = [
            [*path, earlier]
            for path in paths
            for earlier in hops_back(receiver, path[-1], how)
            if earlier.service == service and earlier.name == name and wanted(earlier)
        ]
        assert longer, f"no {service} span {name!r} ({how}) behind " + " or ".join(
            " <- ".join(map(str, path)) for path in paths[:3]
        )
        paths = longer[:50]  # the links of a window or a batch fan out; a few complete paths are plenty
    return paths


@pytest.mark.timeout(900)  # the demo up to the rollback (see test_demo.py)
def test_prediction_stream_window_alert_rollback_are_one_trace(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        ports = free_ports(1 + 2 * len(SERVICES))
        options = StackOptions(
            data_dir=tmp_path / "demo",
            broker_port=ports.pop(),
            ports=tuple(f"{s}.{kind}={ports.pop()}" for s in SERVICES for kind in ("grpc", "http")),
            env=tuple(f"{s}.otlp_endpoint={receiver.endpoint}" for s in SERVICES),
            timeout=180.0,
        )
        result = run_demo(options, retrain=False)  # the trace ends at the rollback: the retraining act adds nothing
        assert result.failure is None, str(result.failure)
        assert tuple(result.steps) == ROLLBACK_STEPS

    spans = list(receiver.spans.values())
    enacted = [
        s
        for s in spans
        if s.service == "serving" and s.name == "process modelyard.governance.decisions" and _event(ROLLBACK)(s)
    ]
    assert enacted, "serving exported no span for enacting the rollback"

    paths = chains(receiver, enacted[0])

    # Parent/child from the alert to the rollback is one trace; so is the stream's send to the monitor's batch.
    for path in paths:
        enact, send_decision, process_alert, send_alert, window, process_batch, send_batch, create, infer = path
        assert len({s.trace_id for s in (enact, send_decision, process_alert, send_alert, window)}) == 1
        assert process_batch.trace_id == send_batch.trace_id == create.trace_id
        # The batch's span links to the inference spans of its records (a bounded sample of them).
        assert 0 < len(create.links) <= LINK_LIMIT
        assert all(link.attributes.get("modelyard.link") == "prediction" for link in create.links)
        assert create.attributes["modelyard.traced_records"] >= len(create.links)
        # The window's span links to its records' inference spans too, and to the batches that filled it.
        assert 0 < len(window.links) <= LINK_LIMIT
        window_links = {link.span_id: link.attributes.get("modelyard.link") for link in window.links}
        linked = [receiver.spans[i] for i, kind in window_links.items() if kind == "prediction" and i in receiver.spans]
        assert linked and all(s.service == "serving" and s.name == "ModelInfer" for s in linked)
        assert window.attributes["modelyard.model.name"] == "breast-cancer"
        assert window.attributes["modelyard.incident_changes"] >= 1
        assert infer.attributes["inference.model"] == "breast-cancer"

    # The alert that caused the rollback came from a window of the canary (v2), which the rollback took back.
    windows = {path[4].span_id: path[4] for path in paths}
    assert {w.attributes["modelyard.model.version"] for w in windows.values()} == {2}
