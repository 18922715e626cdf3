"""Gauges read from a function, in one process and in worker processes.

In one process a gauge child is read at scrape time (`set_function`: nothing on the request path). With worker
processes, prometheus_client runs in multiprocess mode: a scrape reads every worker's files, never calls a
function, and removing a series is not supported. There each worker writes its function gauges' values once a
second instead (`refresh`, from its readiness loop), and a series is left in place rather than removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import Gauge, values
from prometheus_client.metrics import MetricWrapperBase

MULTIPROCESS: bool = bool(getattr(values.ValueClass, "_multiprocess", False))

_functions: dict[int, tuple[Gauge, Callable[[], float]]] = {}


def track(child: Gauge, read: Callable[[], float]) -> None:
    """`child` (a gauge, or one labelled child of one) reads `read()`."""
    if MULTIPROCESS:
        _functions[id(child)] = (child, read)
    else:
        child.set_function(read)


def forget(metric: MetricWrapperBase, *labels: str) -> None:
    """Stop exporting the series of `labels` of any metric: removed in one process; in multiprocess mode (no
    removal there) left at its last value and, for a tracked gauge, no longer refreshed."""
    if MULTIPROCESS:
        _functions.pop(id(metric.labels(*labels)), None)
        return
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def refresh() -> None:
    """Write every tracked function's value (multiprocess mode; nothing to do otherwise)."""
    for child, read in list(_functions.values()):
        child.set(read())
