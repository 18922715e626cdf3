"""The one envelope of every Modelyard event: CloudEvents 1.0 in Kafka binary content mode.

The protobuf payload is the record value; the CloudEvents attributes and the W3C trace context are headers;
the key is the model name so that all events of one model stay in order on one partition. The CloudEvents
`type` is the payload's full protobuf name, which is also how a consumer finds the class to decode it with.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from google.protobuf.message import DecodeError, Message
from opentelemetry import context as otel_context
from opentelemetry import propagate

from modelyard.events import headers as h
from modelyard.events.topics import payload_type

SPECVERSION = "1.0"
CONTENT_TYPE = "application/protobuf"

Headers = list[tuple[str, bytes]]
# Attributes that decide what a record is: a second copy would let a reader and a verifier disagree.
_SINGLE_HEADERS = frozenset(
    {h.SPECVERSION, h.ID, h.SOURCE, h.TYPE, h.TIME, h.CONTENT_TYPE, h.SIGNING_KEY_ID, h.SIGNATURE}
)


class Position(NamedTuple):
    """Where a record sits in its stream; a handler that stores `offset + 1` with its state resumes exactly there."""

    topic: str
    partition: int
    offset: int


class EnvelopeError(ValueError):
    """A record that is not a Modelyard event: missing or bad attributes, unknown type, undecodable payload."""


@dataclass(frozen=True)
class Event:
    key: str
    payload: Message
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    # W3C trace context carried with the event ("traceparent", "tracestate").
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.payload.DESCRIPTOR.full_name)

    @classmethod
    def new(cls, key: str, payload: Message, source: str) -> Event:
        """A new event that carries the caller's current trace context."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return cls(key=key, payload=payload, source=source, trace=carrier)

    def trace_context(self) -> otel_context.Context:
        """The producer's trace context, to parent or link the consumer's span to."""
        return propagate.extract(self.trace)


def encode(event: Event) -> tuple[bytes, bytes, Headers]:
    """Kafka key, value and headers for an event."""
    headers: Headers = [
        (h.SPECVERSION, SPECVERSION.encode()),
        (h.ID, event.id.encode()),
        (h.SOURCE, event.source.encode()),
        (h.TYPE, event.type.encode()),
        (h.TIME, event.time.isoformat().encode()),
        (h.CONTENT_TYPE, CONTENT_TYPE.encode()),
    ]
    headers += [(name, value.encode()) for name, value in sorted(event.trace.items())]
    # Deterministic bytes: what a signature covers must come out the same however often it is encoded.
    return event.key.encode(), event.payload.SerializeToString(deterministic=True), headers


def _attributes(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The headers as text. Every record is decoded, so the common case (each header once, all with a value) is one
    comprehension; anything else is walked header by header to say what is wrong."""
    try:
        attrs = {name: raw.decode("utf-8", errors="replace") for name, raw in headers}
        if len(attrs) == len(headers):
            return attrs
    except AttributeError:  # a header without a value (None), or not bytes
        pass
    attrs = {}
    for name, raw in headers:
        if name in attrs and name in _SINGLE_HEADERS:
            raise EnvelopeError(f"header {name!r} appears more than once")
        if raw is None:  # Kafka allows a header without a value; none of ours is one
            raise EnvelopeError(f"header {name!r} has no value")
        attrs[name] = bytes(raw).decode("utf-8", errors="replace")
    return attrs


def decode(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event:
    """The event in a Kafka record; raises EnvelopeError for anything that is not one of ours."""
    attrs = _attributes(headers)
    if attrs.get(h.SPECVERSION) != SPECVERSION:
        raise EnvelopeError(f"not a CloudEvents {SPECVERSION} record (ce_specversion={attrs.get(h.SPECVERSION)!r})")
    missing = [name for name in (h.ID, h.SOURCE, h.TYPE, h.TIME) if not attrs.get(name)]
    if missing:
        raise EnvelopeError(f"missing CloudEvents attributes: {', '.join(missing)}")
    if attrs.get(h.CONTENT_TYPE, CONTENT_TYPE) != CONTENT_TYPE:
        raise EnvelopeError(f"unsupported content-type {attrs[h.CONTENT_TYPE]!r}")
    payload_class = payload_type(attrs[h.TYPE])
    if payload_class is None:
        raise EnvelopeError(f"unknown event type {attrs[h.TYPE]!r}")
    try:
        time = datetime.fromisoformat(attrs[h.TIME])
    except ValueError as exc:
        raise EnvelopeError(f"bad ce_time {attrs[h.TIME]!r}") from exc
    if value is None:
        raise EnvelopeError("the record has no value (a tombstone is not an event)")
    payload = payload_class()
    try:
        payload.ParseFromString(value)
    except DecodeError as exc:
        raise EnvelopeError(f"payload is not a valid {attrs[h.TYPE]}: {exc}") from exc
    trace = {name: attrs[name] for name in (h.TRACEPARENT, h.TRACESTATE) if name in attrs}
    return Event(
        key=(key or b"").decode("utf-8", errors="replace"),
        payload=payload,
        source=attrs[h.SOURCE],
        id=attrs[h.ID],
        time=time,
        trace=trace,
    )
