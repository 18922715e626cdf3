"""Joined labels in the store: written in bulk with the checkpoint that joined them, read back as realised performance
per window slot (the prediction's event time decides the slot, so a late label counts where its prediction was)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from modelyard.monitor.adapters.schema import labels, slot_counts
from modelyard.monitor.domain.performance import LabelledPrediction, PendingPrediction, realised_metrics
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.views import PerformanceWindow


def insert_labels(db: Connection, joined: Sequence[LabelledPrediction], policy: MonitorPolicy) -> None:
    """The labelled predictions are kept. Hot path (every label): one driver-level executemany over plain tuples,
    the time they were stored one literal."""
    if not joined:
        return
    mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
    width = policy.window.max_seconds
    stored_at = float(time.time())  # a float's repr: a plain SQL numeric literal
    marks = ", ".join((mark,) * 10)
    db.exec_driver_sql(
        f"INSERT INTO {labels.name} (model_name, model_version, slot, event_time, label, score, value, truth_label, "
        f"truth_value, features, stored_at) VALUES ({marks}, {stored_at!r})",
        [
            (
                p.model_name,
                p.model_version,
                int(p.event_time // width),
                p.event_time,
                p.label,
                p.score,
                p.value,
                x.truth_label,
                x.truth_value,
                p.features,
            )
            for x in joined
            for p in (x.prediction,)
        ],
    )


def cumulative_performance(
    db: Connection, policy: MonitorPolicy, model_name: str, model_version: int
) -> tuple[dict[str, float], float]:
    """Realised metrics over the labels kept (those within the TTL) and the share of predictions labelled."""
    rows = db.execute(sa.select(labels).where(*_of(model_name, model_version))).all()
    if not rows:
        return {}, 0.0
    predicted = db.scalar(
        sa.select(sa.func.sum(slot_counts.c.predictions)).where(
            slot_counts.c.model_name == model_name,
            slot_counts.c.model_version == model_version,
            slot_counts.c.slot >= min(r.slot for r in rows),
        )
    )
    realised = realised_metrics(_labelled(rows), policy.performance.positive_label)
    return realised.metrics, realised.labelled / max(int(predicted or 0), 1)


def performance_windows(
    db: Connection, policy: MonitorPolicy, model_name: str, model_version: int, limit: int
) -> list[PerformanceWindow]:
    """Realised metrics of the newest `limit` window slots that have labels, newest first."""
    slots = (
        sa.select(labels.c.slot).where(*_of(model_name, model_version)).distinct().order_by(labels.c.slot.desc())
    ).limit(limit)
    wanted = [int(s) for s in db.scalars(slots)]
    if not wanted:
        return []
    rows = db.execute(
        sa.select(labels).where(*_of(model_name, model_version), labels.c.slot.in_(wanted)).order_by(labels.c.slot)
    ).all()
    counted = db.execute(
        sa.select(slot_counts.c.slot, slot_counts.c.predictions).where(
            slot_counts.c.model_name == model_name,
            slot_counts.c.model_version == model_version,
            slot_counts.c.slot.in_(wanted),
        )
    ).all()
    counts = {int(slot): int(predictions) for slot, predictions in counted}
    width = policy.window.max_seconds
    result = []
    for slot, group in groupby(rows, key=lambda r: int(r.slot)):
        realised = realised_metrics(_labelled(list(group)), policy.performance.positive_label)
        predictions = int(counts.get(slot, 0))
        result.append(
            PerformanceWindow(slot * width, (slot + 1) * width, predictions, realised.labelled, realised.metrics)
        )
    return result[::-1]


def _of(model_name: str, model_version: int) -> tuple[sa.ColumnElement[bool], ...]:
    return labels.c.model_name == model_name, labels.c.model_version == model_version


def labelled_traffic(db: Connection, model_name: str, limit: int) -> list[LabelledPrediction]:
    """The model's newest `limit` labelled predictions that kept their features (any version), newest first."""
    rows = db.execute(
        sa.select(labels)
        .where(labels.c.model_name == model_name, labels.c.features.is_not(None))
        .order_by(labels.c.event_time.desc(), labels.c.id.desc())
        .limit(limit)
    ).all()
    return _labelled(rows)


def _labelled(rows: Sequence[Row[tuple[object, ...]]]) -> list[LabelledPrediction]:
    return [
        LabelledPrediction(
            PendingPrediction(
                "", r.model_name, int(r.model_version), r.event_time, r.label, r.score, r.value, r.features
            ),
            r.truth_label,
            r.truth_value,
        )
        for r in rows
    ]
