"""The topic guard outlives an unexpected error: its degraded report clears once verification succeeds again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from modelyard.events.topics import SERVING_PREDICTIONS
from modelyard.kafka import topic_guard

pytestmark = pytest.mark.unit


async def test_an_unexpected_error_is_reported_then_cleared_when_verification_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes: list[Exception | None] = [RuntimeError("a client library's own error"), None]

    async def repair(*_: object, **__: object) -> list[str]:
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return []

    monkeypatch.setattr(topic_guard, "repair_topics", repair)
    guard = topic_guard.TopicGuard("127.0.0.1:1", [SERVING_PREDICTIONS], interval_s=3600.0)
    guard.start()
    try:
        await until(lambda: isinstance(guard.last_error, RuntimeError))  # the first round: reported
        guard.check_soon()  # the next round succeeds: the guard is still running and clears it
        await until(lambda: not outcomes and guard.last_error is None)
    finally:
        await guard.stop()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the guard never got there")
