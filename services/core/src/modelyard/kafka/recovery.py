"""How a consumer gets back on its feet when the broker loses what it held (the embedded broker, restarted): its
topics are verified and re-created (`TopicGuard`), a commit is bounded and repeated failures make the member rejoin
its group, and partitions the broker lost are read again from their start. What is wrong meanwhile is reported
by `delivering`, a degradation check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from modelyard.events.topics import Topic
from modelyard.kafka.admin import cluster_id
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity
from modelyard.kafka.topic_guard import TopicGuard

log = logging.getLogger(__name__)


CLUSTER_ID_ATTEMPTS = 5  # over about 3 s


class GroupRecovery:
    """One consumer group member's recovery; `rejoin` subscribes the member anew (aiokafka then revokes, rejoins and
    fetches fresh metadata)."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[Topic | str],
        rejoin: Callable[[], None],
        *,
        commit_timeout_s: float,
        rejoin_after_failed_commits: int,
        topic_check_interval_s: float,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._group_id = group_id
        self._topics = {t.name if isinstance(t, Topic) else t for t in topics}
        self._rejoin = rejoin
        self._commit_timeout_s = commit_timeout_s
        self._rejoin_after = rejoin_after_failed_commits
        self.guard = TopicGuard(
            bootstrap, topics, interval_s=topic_check_interval_s, on_repair=self._on_repair, security=security
        )
        self._failed_commits = 0  # in a row
        self._rejoining = False  # a rejoin was asked for and its assignment has not come yet
        self._last_commit_error: BaseException | None = None
        self._cluster_id: str | None = None  # of the broker at the last assignment: another one lost our partitions
        # Once the broker lost partitions (restarted, or a topic re-created), each is read from its start once.
        self._lost_partitions = False
        self._read_from_start: set[TopicPartition] = set()

    async def delivering(self) -> bool:
        """A degradation check: the broker answers, the topics are in place and commits go through (a failed one
        is retried by delivering its records again, after rejoining the group)."""
        if self.guard.last_error is not None:
            raise ConnectionError(f"cannot verify topics: {type(self.guard.last_error).__name__}")
        if self._failed_commits:
            raise ConnectionError(
                f"{self._failed_commits} commits failed in a row ({type(self._last_commit_error).__name__})"
            )
        return True

    async def commit(self, commit: Callable[[], Awaitable[None]], offsets: object) -> None:
        """Run `commit` (of `offsets`), bounded: aiokafka retries a retriable error for ever (a partition the broker
        lost, say). Whatever the outcome, the records are committed or will be delivered again (at-least-once)."""
        try:
            async with asyncio.timeout(self._commit_timeout_s):
                await commit()
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another member, which resumes from the last commit: these records are
            # handled again there (at-least-once), never lost.
            log.warning("consumer %s: commit of %s lost to a rebalance: %r", self._group_id, offsets, exc)
        except (KafkaError, TimeoutError) as exc:
            self._commit_failed(exc)
        else:
            self._failed_commits = 0

    def _commit_failed(self, error: BaseException) -> None:
        # The topics are verified at once, and a member whose commits keep failing rejoins, so that the group's
        # new generation and assignment fit the broker's partitions.
        self._failed_commits += 1
        self._last_commit_error = error
        self.guard.check_soon()
        if self._failed_commits % self._rejoin_after == 0:
            log.warning(
                "consumer %s: %d commits failed in a row (last: %r); rejoining the group",
                self._group_id,
                self._failed_commits,
                error,
            )
            self._rejoining = True
            self._rejoin()

    def idle(self) -> None:
        """A fetch brought nothing. After a failed commit no later one may come to succeed (a topic that is seldom
        written): rejoin once now, so that the assignment settles the failure instead of the next record."""
        if self._failed_commits and not self._rejoining:
            log.info("consumer %s: idle after a failed commit; rejoining the group", self._group_id)
            self._rejoining = True
            self._rejoin()

    def assigned(self) -> None:
        """The member (re)joined its group and has an assignment of the new generation: commits that failed before
        are stale news (their records are delivered again), no longer a degradation."""
        self._failed_commits = 0
        self._rejoining = False

    async def _on_repair(self, repaired: list[str]) -> None:
        if set(repaired) & self._topics:
            # The assignment was made for the lost topics' partitions; what was read of them since is gone too.
            self._lost_partitions = True
            self._read_from_start = {tp for tp in self._read_from_start if tp.topic not in repaired}
            self._rejoin()

    async def lost(self, resumed: Collection[TopicPartition]) -> set[TopicPartition]:
        """Of the partitions resumed from stored positions at an assignment, those the broker lost since: to be
        read from offset 0 (a fetch past the end of a re-created partition gets no OFFSET_OUT_OF_RANGE from Tansu,
        and its ListOffsets answers wrong ends for batched records, so the cluster id tells, not the offsets)."""
        if await self._broker_restarted():
            self._lost_partitions = True
            self._read_from_start.clear()
        lost = {tp for tp in resumed if self._lost_partitions and tp not in self._read_from_start}
        self._read_from_start |= lost
        if lost:
            log.warning(
                "consumer %s: the broker lost %s since the stored positions (restarted): reading them from the start",
                self._group_id,
                ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in lost)),
            )
        return lost

    async def _broker_restarted(self) -> bool:
        """Whether the cluster id changed since the last assignment: the embedded broker gets a new one at every
        start, and comes back without a topic or offset (a real cluster keeps its id)."""
        # Asked a few times: an answer missed here would leave the partitions at positions past their new end.
        for attempt in range(CLUSTER_ID_ATTEMPTS):
            try:
                current = await cluster_id(self._bootstrap, self._security)
                break
            except (KafkaError, OSError) as exc:
                if attempt + 1 == CLUSTER_ID_ATTEMPTS:
                    log.warning("consumer %s: cluster id unknown (%r)", self._group_id, exc)
                    return False
                await asyncio.sleep(0.2 * 2**attempt)
        previous, self._cluster_id = self._cluster_id, current or self._cluster_id
        return previous is not None and current is not None and current != previous


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """Hands a consumer's rebalance to its own coroutines: `revoked` before partitions move to another member,
    `assigned` once new ones are assigned."""

    def __init__(
        self,
        revoked: Callable[[Collection[TopicPartition]], Awaitable[None]],
        assigned: Callable[[Collection[TopicPartition]], Awaitable[None]],
    ) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._assigned(assigned)
