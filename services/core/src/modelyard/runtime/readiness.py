"""Readiness: named checks evaluated in a loop; /readyz and the gRPC health service report the last result."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiokafka.client import AIOKafkaClient
from prometheus_client import Gauge

from modelyard.telemetry import muted_logs

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
"""Ready when it returns True; not ready when it returns False, raises, or outlives its timeout."""

_READY = Gauge("modelyard_ready", "1 when every readiness check of the service passes", ["service"])
_CHECK_PASSING = Gauge(
    "modelyard_readiness_check_passing", "1 when the named readiness check passes", ["service", "check"]
)


@dataclass(frozen=True)
class ReadinessReport:
    ready: bool
    failing: dict[str, str] = field(default_factory=dict)  # check name -> why
    draining: bool = False
    checked_at: float | None = None  # time.time() of the evaluation, None before the first

    def as_json(self) -> dict[str, object]:
        return {"ready": self.ready, "draining": self.draining, "failing": self.failing}


_PENDING = ReadinessReport(ready=False, failing={"startup": "readiness not evaluated yet"})


class Readiness:
    """Holds the checks and the latest report; `evaluate` runs every check concurrently, each bounded."""

    def __init__(self, service: str, checks: Mapping[str, ReadinessCheck], check_timeout_s: float = 5.0) -> None:
        self.service = service
        self.checks = dict(checks)
        self.check_timeout_s = check_timeout_s
        self.report = _PENDING

    async def evaluate(self) -> ReadinessReport:
        if self.report.draining:
            return self.report
        results = await asyncio.gather(*(self._run(name, check) for name, check in self.checks.items()))
        failing = {name: reason for name, reason in results if reason is not None}
        previous, self.report = self.report, ReadinessReport(not failing, failing, checked_at=time.time())
        self._log_changes(previous, self.report)
        _READY.labels(self.service).set(1 if self.report.ready else 0)
        for name in self.checks:
            _CHECK_PASSING.labels(self.service, name).set(0 if name in failing else 1)
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
        if current.ready and not previous.ready:
            log.info("ready: all %d readiness checks pass", len(self.checks))


def kafka_check(bootstrap: str, timeout_s: float = 3.0) -> ReadinessCheck:
    """Ready when the broker at `bootstrap` answers a metadata request."""

    async def kafka() -> bool:
        await probe_kafka(bootstrap, timeout_s)
        return True

    return kafka


async def probe_kafka(bootstrap: str, timeout_s: float = 3.0) -> None:
    """Raise unless a broker at `bootstrap` answers a metadata request within `timeout_s`."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
    finally:
        await client.close()
