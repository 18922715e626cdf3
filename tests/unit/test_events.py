from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from modelyard.contracts.events.v1 import registry_events_pb2, serving_events_pb2
from modelyard.events import catalogue, headers, topics
from modelyard.events.envelope import EnvelopeError, Event, decode, encode

pytestmark = pytest.mark.unit
DOCS = Path(__file__).parents[2] / "docs/events.md"


def alias_moved() -> Event:
    return Event.new(
        "iris",
        registry_events_pb2.AliasMoved(model_name="iris", alias="production", to_version=2),
        "registry",
    )


def test_round_trip_keeps_every_attribute_and_payload() -> None:
    event = alias_moved()
    key, value, hdrs = encode(event)
    assert key == b"iris"
    names = [name for name, _ in hdrs]
    assert names[:6] == [
        headers.SPECVERSION,
        headers.ID,
        headers.SOURCE,
        headers.TYPE,
        headers.TIME,
        headers.CONTENT_TYPE,
    ]
    assert dict(hdrs)[headers.TYPE] == b"modelyard.events.v1.AliasMoved"
    assert dict(hdrs)[headers.CONTENT_TYPE] == b"application/protobuf"
    assert decode(key, value, hdrs) == event


def test_trace_context_travels_in_traceparent() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("produce") as span:
        event = alias_moved()
    hdrs = dict(encode(event)[2])
    span_context = span.get_span_context()
    assert hdrs[headers.TRACEPARENT].startswith(
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-".encode()
    )
    received = decode(*encode(event))
    parent = trace.get_current_span(received.trace_context()).get_span_context()
    assert (parent.trace_id, parent.span_id) == (span_context.trace_id, span_context.span_id)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop(headers.SPECVERSION), "not a CloudEvents 1.0 record"),
        (lambda h: h.pop(headers.ID), "missing CloudEvents attributes: ce_id"),
        (lambda h: h.update({headers.TYPE: b"acme.Unknown"}), "unknown event type 'acme.Unknown'"),
        (lambda h: h.update({headers.CONTENT_TYPE: b"application/json"}), "unsupported content-type"),
        (lambda h: h.update({headers.TIME: b"yesterday"}), "bad ce_time"),
    ],
)
def test_records_that_are_not_our_events_are_refused_with_the_reason(mutate, message) -> None:  # type: ignore[no-untyped-def]
    key, value, hdrs = encode(alias_moved())
    as_dict = dict(hdrs)
    mutate(as_dict)
    with pytest.raises(EnvelopeError, match=message):
        decode(key, value, list(as_dict.items()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: [*h, (headers.ID, None)], "header 'ce_id' appears more than once"),
        (lambda h: [*h, (headers.TYPE, b"modelyard.events.v1.TagsChanged")], "'ce_type' appears more than once"),
        (lambda h: [(k, None if k == headers.SOURCE else v) for k, v in h], "header 'ce_source' has no value"),
        (lambda h: [*h, ("x-anything", None)], "header 'x-anything' has no value"),
    ],
)
def test_null_and_repeated_headers_are_refused_as_envelope_errors(mutate, message) -> None:  # type: ignore[no-untyped-def]
    key, value, hdrs = encode(alias_moved())
    with pytest.raises(EnvelopeError, match=message):
        decode(key, value, mutate(hdrs))


def test_a_record_without_a_value_is_not_an_event() -> None:
    key, _, hdrs = encode(alias_moved())
    with pytest.raises(EnvelopeError, match="no value"):
        decode(key, None, hdrs)


def test_undecodable_payload_is_refused() -> None:
    key, _, hdrs = encode(alias_moved())
    with pytest.raises(EnvelopeError, match=r"payload is not a valid modelyard\.events\.v1\.AliasMoved"):
        decode(key, b"\xff\xff\xff", hdrs)


def test_topic_names_follow_the_convention_and_types_are_unique() -> None:
    for topic in topics.ALL:
        service, stream = topic.name.removeprefix("modelyard.").split(".")
        assert service in {"registry", "serving", "monitor", "governance"} and stream.isidentifier()
        assert topic.dlq == topic.name + ".dlq"
        assert topic.partitions >= 1
    all_types = [t for topic in topics.ALL for t in topic.event_types]
    assert len(all_types) == len(set(all_types))
    assert topics.payload_type("modelyard.events.v1.PredictionBatch") is serving_events_pb2.PredictionBatch


def test_every_event_message_in_the_contracts_has_a_topic() -> None:
    from modelyard.contracts.events.v1 import governance_events_pb2, monitor_events_pb2

    modules = (registry_events_pb2, governance_events_pb2, serving_events_pb2, monitor_events_pb2)
    # Messages that are parts of events rather than events themselves.
    parts = {"TensorColumn", "Evidence"}
    declared = {
        m.full_name for mod in modules for name, m in mod.DESCRIPTOR.message_types_by_name.items() if name not in parts
    }
    assert declared == {t for topic in topics.ALL for t in topic.event_types}


def test_docs_events_md_is_in_step_with_the_topic_catalogue() -> None:
    document = DOCS.read_text()
    assert catalogue.update(document) == document, "docs/events.md is stale: run `make docs`"
