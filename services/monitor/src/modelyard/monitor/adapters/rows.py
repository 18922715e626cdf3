"""How the monitor's store writes its values into columns and reads them back: window columns, reports, incidents."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.monitor.domain.drift import FeatureTest
from modelyard.monitor.domain.evaluation import Distribution, FeatureResult, WindowReport
from modelyard.monitor.domain.incidents import Evidence, Severity, Signal
from modelyard.monitor.domain.views import IncidentView, json_safe
from modelyard.monitor.domain.windows import Columns


def incident_views(db: Connection, query: sa.Select[Any]) -> list[IncidentView]:
    return [
        IncidentView(
            incident_id=r.incident_id,
            model_name=r.model_name,
            model_version=int(r.model_version),
            signal=Signal(r.signal),
            feature=r.feature,
            severity=Severity(r.severity),
            open=bool(r.open),
            opened_at=float(r.opened_at),
            resolved_at=None if r.resolved_at is None else float(r.resolved_at),
            evidence=tuple(Evidence(**_nan(e)) for e in json.loads(r.evidence)),
            reference_id=r.reference_id,
            config_hash=r.config_hash,
        )
        for r in db.execute(query).all()
    ]


def columns_to_bytes(columns: Columns) -> bytes:
    arrays: dict[str, Any] = {
        "event_time": columns.event_time,
        "latency_ms": columns.latency_ms,
        "status": columns.status,
    }
    if columns.schema_violations is not None:
        arrays["schema_violations"] = columns.schema_violations
    arrays |= {f"n:{k}": v for k, v in columns.numeric.items()}
    arrays |= {f"c:{k}": v for k, v in columns.categorical.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def columns_from_bytes(data: bytes) -> Columns:
    with np.load(io.BytesIO(data)) as arrays:
        names = list(arrays.keys())
        return Columns(
            event_time=arrays["event_time"],
            latency_ms=arrays["latency_ms"],
            status=arrays["status"],
            numeric={k[2:]: arrays[k] for k in names if k.startswith("n:")},
            categorical={k[2:]: arrays[k] for k in names if k.startswith("c:")},
            schema_violations=arrays["schema_violations"] if "schema_violations" in names else None,
        )


def report_to_json(report: WindowReport) -> str:
    return json.dumps(json_safe(report), sort_keys=True)


def report_from_json(text: str) -> WindowReport:
    doc = _nan(json.loads(text))
    features = tuple(
        FeatureResult(Signal(f["signal"]), FeatureTest(**f["test"]), f["threshold"], f["breached"])
        for f in doc.pop("features")
    )
    doc["model_drift"] = {Signal(k): v for k, v in doc["model_drift"].items()}
    doc["outputs"] = {
        name: Distribution(tuple(d["bins"]), tuple(d["reference"]), tuple(d["current"]))
        for name, d in doc["outputs"].items()
    }
    return WindowReport(**doc, features=features)


def _nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return value
