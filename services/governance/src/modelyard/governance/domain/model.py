"""What governance knows about a model version (read from the registry) and how it refers to versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

Dim = int | str | None  # a fixed size, a symbolic name ("N") or unknown


@dataclass(frozen=True)
class VersionRef:
    model_name: str
    version: int
    digest: str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    element_type: str
    shape: tuple[Dim, ...] | None = None  # None: unknown rank
    feature_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()


@dataclass(frozen=True)
class VersionFacts:
    """One registered version, as the registry describes it: the evidence governance decides on."""

    ref: VersionRef
    created_by: str
    created_at: datetime
    signature: Signature = field(default_factory=Signature)
    description: str = ""
    owner: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)  # from lineage, as the trainer reported them
    training_datasets: tuple[str, ...] = ()
    evaluation_datasets: tuple[str, ...] = ()
    code_revision: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)  # version tags over model tags
