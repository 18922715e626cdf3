"""Live deployments: the versions of each model being served, routing between them, atomic swap and drain.

Everything here runs on one event loop (the gRPC server's), so counters and the live map need no locks: a swap
is one dict assignment, and a request that already holds a `ServedVersion` finishes on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from modelyard.serving.domain.batching import Batcher
from modelyard.serving.domain.errors import NotFound, Unavailable
from modelyard.serving.domain.model import Plan, VersionRef
from modelyard.serving.domain.ports import ModelRunner, RequestCodec, VersionMetrics
from modelyard.serving.domain.tensors import Array

_BUCKETS = 1 << 32


class ServedVersion:
    """One loaded model version: its runner, codec, metrics, how it executes, and its in-flight count."""

    def __init__(
        self,
        ref: VersionRef,
        runner: ModelRunner,
        codec: RequestCodec,
        metrics: VersionMetrics,
        *,
        pool: Executor | None = None,
        batcher: Batcher | None = None,
        warmup_ms: float = 0.0,
    ) -> None:
        self.ref = ref
        self.runner = runner
        self.codec = codec
        self.metrics = metrics
        self.label = str(ref.version)
        self.output_names = tuple(spec.name for spec in codec.signature.outputs)
        # Inline runs on the event loop: cheapest for models that take microseconds. A pool keeps the loop free
        # for heavier ones (onnxruntime releases the GIL while it computes).
        self.pool = pool
        self.batcher = batcher
        self.inline = pool is None and batcher is None
        self.warmup_ms = warmup_ms
        self.in_flight = 0
        self._idle: asyncio.Event | None = None
        metrics.track_in_flight(lambda: self.in_flight)

    async def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
        """Run through the batcher or off the event loop (the plain inline case is the caller's, without await)."""
        if self.batcher is not None:
            return await self.batcher.submit(inputs, outputs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.runner.run, inputs, outputs)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request runs on this version any more; False when `timeout_s` passed first."""
        if self.in_flight == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.runner.close()
        self.metrics.close()


def canary_bucket(request_id: str) -> int:
    """A stable bucket in [0, 2**32) per request id, so a retried or repeated request keeps its version."""
    if not request_id:
        return random.getrandbits(32)
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=4).digest(), "little")


@dataclass(frozen=True, slots=True)
class Deployment:
    """What one model serves right now; replaced whole, never changed in place."""

    plan: Plan
    primary: ServedVersion
    canary: ServedVersion | None = None
    shadow: ServedVersion | None = None
    by_version: Mapping[int, ServedVersion] = field(init=False)
    _canary_below: int = field(init=False)

    def __post_init__(self) -> None:
        versions = {v.ref.version: v for v in (self.primary, self.canary, self.shadow) if v is not None}
        object.__setattr__(self, "by_version", versions)
        object.__setattr__(self, "_canary_below", round(self.plan.canary_weight * _BUCKETS))

    @property
    def versions(self) -> tuple[ServedVersion, ...]:
        return tuple(self.by_version.values())

    def route(self, request_id: str) -> ServedVersion:
        """The primary, or the canary for its (sticky) share of request ids."""
        if self.canary is not None and canary_bucket(request_id) < self._canary_below:
            return self.canary
        return self.primary


class ModelManager:
    """The live deployment of every model, and the models that are planned but not live: being loaded, or waiting
    for their artifacts (answered UNAVAILABLE, which a client retries, not NOT_FOUND, which it does not)."""

    def __init__(self) -> None:
        self._live: dict[str, Deployment] = {}
        self._loading: dict[str, Plan] = {}
        self._missing: set[str] = set()  # planned, not loadable yet (a source away): retried in the background
        # Until the startup plans are served, any model may be one of them: unknown is not yet "not found".
        self.started = False

    def resolve(self, model: str, version: str, request_id: str) -> tuple[Deployment, ServedVersion]:
        """The deployment and version that answer a request; raises NotFound or Unavailable."""
        deployment = self._live.get(model)
        if deployment is None:
            if model in self._loading:
                raise Unavailable(f"model '{model}' is loading")
            if model in self._missing:
                raise Unavailable(f"model '{model}' is planned but not loaded yet (its artifacts are retried)")
            if not self.started:
                raise Unavailable(f"model '{model}' is not served yet: serving is loading its deployment plans")
            raise NotFound(f"unknown model '{model}'")
        if not version:
            return deployment, deployment.route(request_id)
        number = _version_number(model, version)
        served = deployment.by_version.get(number)
        if served is None:
            loading = self._loading.get(model)
            if loading is not None and number in {ref.version for ref in loading.versions}:
                raise Unavailable(f"version {number} of model '{model}' is loading")
            raise NotFound(f"version {number} of model '{model}' is not served")
        return deployment, served

    def get(self, model: str) -> Deployment | None:
        return self._live.get(model)

    def __iter__(self) -> Iterator[Deployment]:
        return iter(list(self._live.values()))

    def loading(self, plan: Plan) -> None:
        self._loading[plan.model] = plan

    def loading_done(self, model: str) -> None:
        self._loading.pop(model, None)

    def loading_models(self) -> list[str]:
        return sorted(self._loading)

    def missing(self, model: str) -> None:
        """`model` is planned but could not be loaded yet; it is being retried."""
        self._missing.add(model)

    def not_missing(self, model: str) -> None:
        """`model` is live, or failed for good (visibly): no longer waited for."""
        self._missing.discard(model)

    def missing_models(self) -> list[str]:
        """Planned models with nothing live: while there are any, this replica does not answer correctly."""
        return sorted(m for m in self._missing if m not in self._live)

    def swap(self, deployment: Deployment) -> Deployment | None:
        """Make `deployment` live for its model at once; returns the one it replaced."""
        previous = self._live.get(deployment.plan.model)
        self._live[deployment.plan.model] = deployment
        self._missing.discard(deployment.plan.model)
        return previous

    def remove(self, model: str) -> Deployment | None:
        return self._live.pop(model, None)


def _version_number(model: str, version: str) -> int:
    try:
        return int(version)
    except ValueError:
        raise NotFound(f"version '{version}' of model '{model}' is not a version number") from None
