"""In-memory stand-ins for a replica run without Kafka (tools, tests): status events kept in a list."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.serving.domain.model import VersionRef


@dataclass
class InMemoryStatus:
    """Keeps ("loaded" | "load_failed" | "unloaded", ref, detail) in the order reported."""

    events: list[tuple[str, VersionRef, str]] = field(default_factory=list)

    async def loaded(self, ref: VersionRef, warmup_ms: float) -> None:
        self.events.append(("loaded", ref, f"{warmup_ms:.1f}ms"))

    async def load_failed(self, ref: VersionRef, reason: str) -> None:
        self.events.append(("load_failed", ref, reason))

    async def unloaded(self, ref: VersionRef) -> None:
        self.events.append(("unloaded", ref, ""))

    def of(self, kind: str) -> list[VersionRef]:
        return [ref for event, ref, _ in self.events if event == kind]
