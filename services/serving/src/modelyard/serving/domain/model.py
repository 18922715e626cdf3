"""Value objects: model versions, tensor signatures and deployment plans."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VersionRef:
    """One model version, pinned by the sha256 digest ("sha256:<hex>") of its ONNX artifact."""

    model: str
    version: int
    digest: str

    def __str__(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output: V2 datatype and shape, -1 marking a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to serve for one model: a primary, an optional weighted canary, an optional shadow.

    `revision` is monotonic per model; a plan older than the one being served is ignored.
    """

    model: str
    revision: int
    primary: VersionRef
    canary: VersionRef | None = None
    canary_weight: float = 0.0
    shadow: VersionRef | None = None

    def __post_init__(self) -> None:
        for ref in self.versions:
            if ref.model != self.model:
                raise ValueError(f"plan for {self.model!r} names a version of {ref.model!r}")
        if not 0.0 <= self.canary_weight <= 1.0:
            raise ValueError(f"canary weight {self.canary_weight} is outside 0..1")

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        """Every distinct version the plan needs loaded."""
        refs = [self.primary, self.canary, self.shadow]
        return tuple(dict.fromkeys(ref for ref in refs if ref is not None))
