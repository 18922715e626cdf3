"""Prometheus metrics of the monitor, on the process-wide registry that the runtime's /metrics serves."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge

from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.incidents import IncidentChange

EFFECT_SIZE = Gauge(
    "modelyard_monitor_effect_size",
    "Effect size of the latest tested window per feature (normed Wasserstein or Jensen-Shannon distance)",
    ["model", "version", "signal", "feature"],
)
WINDOWS = Counter("modelyard_monitor_windows", "Windows closed", ["model", "version", "tested"])
RECORDS = Counter("modelyard_monitor_window_records", "Records in closed windows", ["model", "version"])
LATENCY_P99 = Gauge("modelyard_monitor_latency_p99_ms", "p99 latency of the latest window", ["model", "version"])
ERROR_RATE = Gauge("modelyard_monitor_error_rate", "Error rate of the latest window", ["model", "version"])
REALISED = Gauge(
    "modelyard_monitor_realised_performance",
    "Realised accuracy (classification) or MAE (regression) of the latest label window",
    ["model", "version", "metric"],
)
INCIDENTS = Counter("modelyard_monitor_incidents", "Incident changes", ["model", "signal", "change", "severity"])


class PrometheusMetrics:
    def observe_window(self, report: WindowReport) -> None:
        model, version = report.model_name, str(report.model_version)
        WINDOWS.labels(model, version, str(report.tested).lower()).inc()
        RECORDS.labels(model, version).inc(report.n)
        for f in report.features:
            EFFECT_SIZE.labels(model, version, f.signal.value, f.test.feature).set(f.test.effect_size)
        if "latency_p99_ms" in report.operations:
            LATENCY_P99.labels(model, version).set(report.operations["latency_p99_ms"])
            ERROR_RATE.labels(model, version).set(report.operations["error_rate"])

    def observe_changes(self, changes: Sequence[IncidentChange]) -> None:
        for c in changes:
            INCIDENTS.labels(c.key.model_name, c.key.signal.value, c.change.value, c.severity.name.lower()).inc()

    def observe_performance(self, model_name: str, model_version: int, metric: str, value: float) -> None:
        REALISED.labels(model_name, str(model_version), metric).set(value)
