"""What the domain needs from the outside world; adapters implement these, tests pass fakes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelyard.errors import ErrorKind
from modelyard.serving.domain.model import Plan, Signature, VersionRef
from modelyard.serving.domain.tensors import Array


@dataclass(slots=True)  # not frozen: a frozen dataclass costs microseconds to build, once per request
class DecodedRequest:
    inputs: dict[str, Array]
    outputs: tuple[str, ...]
    raw: bool  # answer in raw_output_contents (as the request came) or in typed contents


class RequestCodec(Protocol):
    """One protocol's requests to arrays and arrays back to its responses, for one model signature
    (`serving.codec.TensorCodec`, the Open Inference Protocol's). The requests and responses are that protocol's
    messages, which the domain does not know: it only keeps the codec with the version it was built for."""

    @property
    def signature(self) -> Signature: ...

    def decode(self, request: Any) -> DecodedRequest:
        """The request's arrays; raises InvalidArgument or ResourceExhausted, naming the tensor."""

    def encode(self, request: Any, version: str, names: Sequence[str], arrays: Sequence[Array], raw: bool) -> Any: ...


class ModelRunner(Protocol):
    """A loaded model: runs a batch and returns the requested outputs, in order. Thread-safe."""

    @property
    def signature(self) -> Signature: ...

    def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]: ...

    def close(self) -> None: ...


class ModelLoader(Protocol):
    def load(self, ref: VersionRef, artifact: bytes) -> ModelRunner:
        """Raises ValueError when the artifact is not a loadable model."""
        ...


class ArtifactSource(Protocol):
    """Where model artifacts come from (the registry, or a local directory as the stand-in)."""

    async def fetch(self, ref: VersionRef) -> bytes: ...

    async def close(self) -> None: ...


class PlanSource(Protocol):
    """Where the deployment plans to serve at startup come from (governance, or a plan file as the stand-in)."""

    async def plans(self) -> list[Plan]:
        """Every current plan. Raises PlanSourceError (transient when asking again later may succeed)."""
        ...

    async def close(self) -> None: ...


class StatusReporter(Protocol):
    """Tells the rest of the platform what this replica actually serves."""

    async def loaded(self, ref: VersionRef, warmup_ms: float) -> None: ...

    async def load_failed(self, ref: VersionRef, reason: str) -> None: ...

    async def unloaded(self, ref: VersionRef) -> None: ...


class VersionMetrics(Protocol):
    """Per model version instruments, created once at load so the request path only observes."""

    def observe(self, code: ErrorKind, latency_s: float) -> None: ...

    def observe_batch(self, size: int, queue_s: float) -> None: ...

    def track_in_flight(self, read: ReadInFlight) -> None: ...

    def close(self) -> None: ...


class ReadInFlight(Protocol):
    def __call__(self) -> float: ...


class MetricsFactory(Protocol):
    def for_version(self, ref: VersionRef) -> VersionMetrics: ...


class StreamMetrics(Protocol):
    """What the prediction stream drops, cuts and fails to deliver, by reason; how many records wait."""

    def dropped(self, model: str, reason: str, count: int = 1) -> None: ...

    def truncated(self, model: str, reason: str) -> None: ...

    def delivery_failed(self, outcome: str) -> None: ...

    def track_pending(self, read: Callable[[], float]) -> None: ...


class NoMetrics:
    """Instruments that record nothing (unit tests, tools)."""

    def observe(self, code: ErrorKind, latency_s: float) -> None:
        pass

    def observe_batch(self, size: int, queue_s: float) -> None:
        pass

    def track_in_flight(self, read: ReadInFlight) -> None:
        pass

    def close(self) -> None:
        pass

    def for_version(self, ref: VersionRef) -> NoMetrics:
        return self

    def dropped(self, model: str, reason: str, count: int = 1) -> None:
        pass

    def truncated(self, model: str, reason: str) -> None:
        pass

    def delivery_failed(self, outcome: str) -> None:
        pass

    def track_pending(self, read: Callable[[], float]) -> None:
        pass
