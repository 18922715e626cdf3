"""Tracing of window evaluation: each window's span is a child of the batch that closed it and links to the other
batches that filled it and to (the first of) its records' inference spans.

In memory only (a few strings per open window): after a restart, a window restored from the store links to the
records and batches that arrived since.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modelyard.monitor.domain.records import PredictionRows
from modelyard.monitor.domain.state import VersionState
from modelyard.monitor.domain.windows import ClosedWindow, Columns, WindowId

# 64 + 64 links stay within OpenTelemetry's default span link limit (128).
MAX_RECORD_LINKS = 64
MAX_BATCH_LINKS = 64
_TRACE_CONTEXT = TraceContextTextMapPropagator()
_NO_ROWS: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)


@dataclass
class WindowTrace:
    """What an open window's span will link to: the first records' trace contexts and the batches that filled it."""

    records: list[str] = field(default_factory=list)  # W3C traceparents
    batches: list[SpanContext] = field(default_factory=list)

    def add(self, batch: SpanContext, traceparents: list[str], rows: npt.NDArray[np.int64]) -> None:
        if batch.is_valid and len(self.batches) < MAX_BATCH_LINKS and batch not in self.batches[-1:]:
            self.batches.append(batch)
        room = MAX_RECORD_LINKS - len(self.records)
        if room <= 0:
            return
        for row in rows.tolist():
            traceparent = traceparents[row]
            if traceparent:
                self.records.append(traceparent)
                room -= 1
                if room == 0:
                    return

    def absorb(self, earlier: WindowTrace) -> None:
        """Take the links of a window merged into this one (its records and batches came first)."""
        self.records = (earlier.records + self.records)[:MAX_RECORD_LINKS]
        self.batches = (earlier.batches + [b for b in self.batches if b not in earlier.batches])[:MAX_BATCH_LINKS]

    def links(self, parent: SpanContext) -> list[Link]:
        records = [
            Link(context, {"modelyard.link": "prediction"})
            for traceparent in self.records
            if (context := _span_context(traceparent)) is not None
        ]
        batches = [Link(batch, {"modelyard.link": "batch"}) for batch in self.batches if batch != parent]
        return records + batches


def _span_context(traceparent: str) -> SpanContext | None:
    context = trace.get_current_span(_TRACE_CONTEXT.extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None


def note_batch(
    traces: MutableMapping[WindowId, WindowTrace],
    rows: PredictionRows,
    appended: Sequence[tuple[WindowId, Columns]],
    sources: Sequence[npt.NDArray[np.int64]],
) -> None:
    """Note, per window this batch filled, the batch's span and the first records' trace contexts."""
    batch = trace.get_current_span().get_span_context()  # the consumer's span for this event
    traced = any(rows.traceparents)
    if not batch.is_valid and not traced:
        return
    for (window_id, _), window_rows in zip(appended, sources, strict=True):
        window_trace = traces.get(window_id)
        if window_trace is None:
            window_trace = traces[window_id] = WindowTrace()
        window_trace.add(batch, rows.traceparents if traced else [], window_rows if traced else _NO_ROWS)


def window_span(
    tracer: trace.Tracer,
    state: VersionState,
    traces: MutableMapping[WindowId, WindowTrace],
    window: ClosedWindow,
) -> AbstractContextManager[trace.Span]:
    """The span of one window's evaluation, in the context of the batch that closed it."""
    window_trace = traces.pop(window.id, None) or WindowTrace()
    parent = trace.get_current_span().get_span_context()
    return tracer.start_as_current_span(
        "evaluate window",
        links=window_trace.links(parent),
        attributes={
            "modelyard.model.name": state.model_name,
            "modelyard.model.version": state.model_version,
            "modelyard.window.id": str(window.id),
            "modelyard.window.closed_by": window.closed_by,
            "modelyard.window.records": len(window.data),
        },
    )
