"""What a consumer admits from a record: the event, or why it is refused before any handler sees it."""

from __future__ import annotations

from typing import Any

from modelyard.events import envelope
from modelyard.events.envelope import EnvelopeError, Event
from modelyard.events.signing import TrustedKeys
from modelyard.events.topics import BY_NAME


def admit(record: Any, trusted: TrustedKeys) -> Event | EnvelopeError:
    """The event in a record, or why it is refused: not an event (whatever the decoder raised), not a type
    or source the catalogue allows on its topic, or not signed by a trusted key where the topic must be."""
    try:
        event = envelope.decode(record.key, record.value, record.headers or ())
    except EnvelopeError as exc:
        return exc
    except Exception as exc:  # poison must never stop the partition: anything undecodable is dead-lettered
        return EnvelopeError(f"undecodable record: {type(exc).__name__}: {exc}")
    topic = BY_NAME.get(record.topic)
    if topic is None:
        return event  # not a catalogue topic (tests, tools): no contract to hold it to
    if event.type not in topic.event_types:
        return EnvelopeError(f"{event.type} is not an event type of {topic.name}")
    if topic.sources and event.source not in topic.sources:
        return EnvelopeError(f"source {event.source[:100]!r} may not publish on {topic.name}")
    if topic.signed:
        try:
            trusted.verify(event.source, topic.name, record.key, record.value, record.headers)
        except EnvelopeError as exc:
            return exc
    return event
