"""Readiness: named checks evaluated in a loop; /readyz and the gRPC health service report the last result.

Two kinds of check. A readiness check decides whether the service answers correctly now: one failing takes it out
of readiness. A degradation check watches a non-critical dependency (serving's prediction stream, say): one failing
shows in /readyz's `degraded`, in `modelyard status` and in metrics, but the service stays ready, so that a load
balancer does not turn a broker outage into a prediction outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiokafka.client import AIOKafkaClient
from prometheus_client import Gauge

from modelyard.kafka.security import PLAINTEXT, KafkaSecurity
from modelyard.telemetry import muted_logs

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
"""Ready when it returns True; not ready when it returns False, raises, or outlives its timeout."""

# With worker processes (prometheus_client's multiprocess mode) the live workers' values combine: ready and passing
# when all are, degraded when one is.
_READY = Gauge(
    "modelyard_ready", "1 when every readiness check of the service passes", ["service"], multiprocess_mode="livemin"
)
_CHECK_PASSING = Gauge(
    "modelyard_readiness_check_passing",
    "1 when the named readiness or degradation check passes",
    ["service", "check"],
    multiprocess_mode="livemin",
)
_DEGRADED = Gauge(
    "modelyard_degraded",
    "1 when a degradation check of the service fails (it stays ready)",
    ["service"],
    multiprocess_mode="livemax",
)


@dataclass(frozen=True)
class ReadinessReport:
    ready: bool
    failing: dict[str, str] = field(default_factory=dict)  # check name -> why
    draining: bool = False
    checked_at: float | None = None  # time.time() of the evaluation, None before the first
    degraded: dict[str, str] = field(default_factory=dict)  # failing degradation checks: name -> why

    def as_json(self) -> dict[str, object]:
        return {"ready": self.ready, "draining": self.draining, "failing": self.failing, "degraded": self.degraded}


_PENDING = ReadinessReport(ready=False, failing={"startup": "readiness not evaluated yet"})


class Readiness:
    """Holds the checks and the latest report; `evaluate` runs every check concurrently, each bounded."""

    def __init__(
        self,
        service: str,
        checks: Mapping[str, ReadinessCheck],
        check_timeout_s: float = 5.0,
        degraded_checks: Mapping[str, ReadinessCheck] | None = None,
    ) -> None:
        self.service = service
        self.checks = dict(checks)
        self.degraded_checks = dict(degraded_checks or {})
        self.check_timeout_s = check_timeout_s
        self.report = _PENDING

    async def evaluate(self) -> ReadinessReport:
        if self.report.draining:
            return self.report
        every = {**self.checks, **self.degraded_checks}
        results = dict(await asyncio.gather(*(self._run(name, check) for name, check in every.items())))
        failing = {name: why for name in self.checks if (why := results[name]) is not None}
        degraded = {name: why for name in self.degraded_checks if (why := results[name]) is not None}
        report = ReadinessReport(not failing, failing, checked_at=time.time(), degraded=degraded)
        previous, self.report = self.report, report
        self._log_changes(previous, self.report)
        _READY.labels(self.service).set(1 if report.ready else 0)
        _DEGRADED.labels(self.service).set(1 if degraded else 0)
        for name, why in results.items():
            _CHECK_PASSING.labels(self.service, name).set(0 if why is not None else 1)
        return self.report

    def start_draining(self) -> None:
        self.report = ReadinessReport(ready=False, failing={"draining": "shutting down"}, draining=True)
        _READY.labels(self.service).set(0)

    async def _run(self, name: str, check: ReadinessCheck) -> tuple[str, str | None]:
        try:
            with muted_logs():  # a failing probe is reported once, as a transition, not on every attempt
                async with asyncio.timeout(self.check_timeout_s):
                    passed = await check()
        except TimeoutError:
            return name, f"no answer within {self.check_timeout_s:g}s"
        except Exception as exc:
            return name, f"{type(exc).__name__}: {exc}"
        return name, None if passed else "check returned false"

    def _log_changes(self, previous: ReadinessReport, current: ReadinessReport) -> None:
        for name, reason in current.failing.items():
            if previous.failing.get(name) != reason:
                log.warning("readiness check %s failing: %s", name, reason)
        for name, reason in current.degraded.items():
            if previous.degraded.get(name) != reason:
                log.warning("degraded: %s failing (still ready): %s", name, reason)
        for name in previous.degraded.keys() - current.degraded.keys():
            log.info("no longer degraded: %s passes", name)
        if current.ready and not previous.ready:
            log.info("ready: all %d readiness checks pass", len(self.checks))


def kafka_check(bootstrap: str, timeout_s: float = 3.0, security: KafkaSecurity = PLAINTEXT) -> ReadinessCheck:
    """Ready when the broker at `bootstrap` answers a metadata request."""

    async def kafka() -> bool:
        await probe_kafka(bootstrap, timeout_s, security)
        return True

    return kafka


async def probe_kafka(bootstrap: str, timeout_s: float = 3.0, security: KafkaSecurity = PLAINTEXT) -> None:
    """Raise unless a broker at `bootstrap` answers a metadata request within `timeout_s`."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **security.client_options()
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
    finally:
        await client.close()
