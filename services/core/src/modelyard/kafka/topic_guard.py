"""Keeps the topics one producer or consumer uses present on the broker, with the catalogue's partitions.

A broker that keeps topics in memory (the embedded one) forgets them when it restarts; clients then re-create
them by accident with the broker's default partition count, and records keyed to the missing partitions are
acknowledged and dropped. A `TopicGuard` verifies its topics when started, every `interval_s`, and at once when
its client reports trouble (`check_soon`: a failed delivery or commit), so the pipeline heals within one interval
of the broker's return, and reports through `last_error` whether the broker answers at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiokafka.errors import KafkaError

from modelyard.events.topics import BY_NAME, Topic
from modelyard.kafka.admin import TopicSetupError, repair_topics
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0

OnRepair = Callable[[list[str]], Awaitable[None]]


class TopicGuard:
    """Watches catalogue topics (names outside the catalogue are ignored: their partitions are nobody's to say)."""

    def __init__(
        self,
        bootstrap: str,
        topics: Iterable[Topic | str] = (),
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        on_repair: OnRepair | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topics: dict[str, Topic] = {}
        self.interval_s = interval_s
        self._on_repair = on_repair
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error: BaseException | None = None  # of the last verification: None while the broker answers
        self.repairs = 0  # verification rounds that re-created something
        for topic in topics:
            self.watch(topic)

    def watch(self, topic: Topic | str) -> None:
        """Guard `topic` too (a catalogue topic or its name); verified at the next round."""
        catalogued = topic if isinstance(topic, Topic) else BY_NAME.get(topic)
        if catalogued is not None and catalogued.name not in self._topics:
            self._topics[catalogued.name] = catalogued
            self.check_soon()

    def check_soon(self) -> None:
        """Verify now rather than at the next interval (the client saw an error that a lost topic explains)."""
        self._wake.set()

    async def verify(self) -> list[str]:
        """One round: the topics re-created (empty when all were there); raises when the broker does not answer."""
        if not self._topics:
            return []
        repaired = await repair_topics(self._bootstrap, self._topics.values(), security=self._security)
        if repaired:
            self.repairs += 1
            log.warning("re-created topics %s: the broker had lost them (restarted?)", ", ".join(repaired))
            if self._on_repair is not None:
                await self._on_repair(repaired)
        return repaired

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="topic guard")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the round: a request made during it asks for another
            try:
                await self.verify()
            except (KafkaError, OSError, TimeoutError, TopicSetupError) as exc:
                if self.last_error is None:
                    log.warning("cannot verify topics on %s: %r", self._bootstrap, exc)
                self.last_error = exc
            except Exception as exc:
                # Anything else (a client library's own error, the repair callback's): the guard must outlive it,
                # or the degraded state it reports would stay on after the broker came back.
                log.exception("verifying topics on %s failed unexpectedly; trying again", self._bootstrap)
                self.last_error = exc
            else:
                if self.last_error is not None:
                    log.info("topics on %s verified again", self._bootstrap)
                self.last_error = None
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that meets a wake-up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
