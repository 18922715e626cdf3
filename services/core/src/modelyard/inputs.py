"""Checks of request input shared by every service, transport-free: a request that fails one is the caller's
error (`BadInput`, INVALID_ARGUMENT / 400 at every edge), never a server error."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

from modelyard.errors import ErrorKind, KindedError


class BadInput(KindedError, ValueError):
    """Input no request may carry (a time outside 0001-9999, a field longer than its cap); safe to show."""

    kind = ErrorKind.INVALID_ARGUMENT


def time_of(message: Message, field: str) -> datetime | None:
    """An optional Timestamp field as an aware UTC datetime (None when unset); BadInput when out of range."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    try:
        value: datetime = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise BadInput(
            f"{field} is not a valid time (seconds {stamp.seconds}, nanos {stamp.nanos}): "
            "years 0001-9999 and nanos 0-999999999"
        ) from None
    return value


def capped(value: str, field: str, max_chars: int) -> str:
    """`value`, unless longer than `max_chars` (BadInput, which names the field and the cap, not the value)."""
    if len(value) > max_chars:
        raise BadInput(f"{field} is {len(value)} characters long; at most {max_chars} are accepted")
    return value
