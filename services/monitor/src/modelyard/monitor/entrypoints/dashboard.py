"""The dashboard: server-rendered HTML and SVG per model version (drift over time with breaches marked, outputs
against the reference, realised performance with label coverage, latency and error rate), incidents listed."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from modelyard.monitor.domain.cbpe import ESTIMATED_ACCURACY
from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.incidents import MODEL_LEVEL, Signal
from modelyard.monitor.domain.policy import SloPolicy
from modelyard.monitor.domain.views import IncidentView, PerformanceHistory, VersionStatus
from modelyard.monitor.entrypoints.svg import Series, bar_chart, line_chart
from modelyard.monitor.handlers import Monitor

DASHBOARD = "Dashboard"  # both pages' operation in the access table
HISTORY = 60  # windows drawn per chart
MAX_LINES = 8  # features per drift chart: the largest effects, so the chart stays readable

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.2rem .5rem;font-size:.85rem;text-align:left}
.open{color:#b00;font-weight:bold}.charts{display:flex;flex-wrap:wrap;gap:1rem}h2{margin-top:1.5rem}
"""


def router(monitor: Monitor) -> APIRouter:
    pages = APIRouter(prefix="/dashboard", include_in_schema=False)

    @pages.get("", response_class=HTMLResponse, name=DASHBOARD)
    async def index() -> str:
        statuses = await asyncio.to_thread(monitor.statuses)
        rows = "".join(
            f'<tr><td><a href="/dashboard/{escape(s.model_name)}/{s.model_version}">{escape(s.model_name)} '
            f"v{s.model_version}</a></td><td>{s.records_seen}</td><td>{s.windows_closed}</td>"
            f'<td class="{"open" if s.open_incidents else ""}">{s.open_incidents}</td></tr>'
            for s in statuses
        )
        table = f"<table><tr><th>version</th><th>records</th><th>windows</th><th>open incidents</th></tr>{rows}</table>"
        return _page("Modelyard monitor", table)

    @pages.get("/{model_name}/{version}", response_class=HTMLResponse, name=DASHBOARD)
    async def version_page(model_name: str, version: int) -> str:
        statuses, reports, incidents, performance = await asyncio.gather(
            asyncio.to_thread(monitor.statuses, model_name),
            asyncio.to_thread(monitor.window_reports, model_name, version, HISTORY),
            asyncio.to_thread(monitor.incident_views, model_name),
            asyncio.to_thread(monitor.performance_windows, model_name, version, HISTORY),
        )
        status = next((s for s in statuses if s.model_version == version), None)
        if status is None:
            raise HTTPException(404, f"{model_name} v{version} is not monitored")
        reports = [r for r in reversed(reports) if r.tested]  # oldest first, left to right
        mine = [i for i in incidents if i.model_version == version]
        body = _summary(status) + _incidents(mine) + _performance(performance, reports)
        body += _drift(reports, monitor) + _outputs(reports)
        body += _operations(reports, monitor.policy.slo)
        return _page(f"{model_name} v{version}", body)

    return pages


def _page(title: str, body: str) -> str:
    return (
        # The empty icon spares the browser a /favicon.ico request that would 404 (a console error).
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _summary(s: VersionStatus) -> str:
    performance = ", ".join(f"{k} {v:.3f}" for k, v in sorted(s.performance.items())) or "no labels yet"
    return (
        f"<p>reference <code>{escape(s.reference_id)}</code> · {s.records_seen} records "
        f"({s.late_records} late) · {s.windows_closed} windows</p>"
        f'<p id="performance">realised performance: {escape(performance)} · label coverage '
        f"{100 * s.label_coverage:.1f}%</p>"
    )


def _incidents(incidents: list[IncidentView]) -> str:
    if not incidents:
        return '<h2>Incidents</h2><p id="no-incidents">none</p>'
    rows = "".join(
        f'<tr class="incident" data-feature="{escape(i.feature)}" data-signal="{i.signal.value}" '
        f'data-features="{escape(json.dumps(_features(i)))}">'
        f'<td class="{"open" if i.open else ""}">{"open" if i.open else "resolved"}</td>'
        f"<td>{i.signal.value}</td><td>{escape(_feature_label(i))}</td><td>{i.severity.name.lower()}</td>"
        f"<td>{_time(i.opened_at)}</td><td>{_evidence(i)}</td></tr>"
        for i in incidents
    )
    header = "<tr><th>state</th><th>signal</th><th>feature</th><th>severity</th><th>opened</th><th>evidence</th></tr>"
    return f"<h2>Incidents</h2><table>{header}{rows}</table>"


def _features(i: IncidentView) -> list[str]:
    """What the incident is about: its key's feature, or for a model-level (drift) incident the features named in
    its evidence, most significant first."""
    if i.feature != MODEL_LEVEL:
        return [i.feature]
    return list(dict.fromkeys(e.feature for e in i.evidence))


def _feature_label(i: IncidentView) -> str:
    return i.feature if i.feature != MODEL_LEVEL else "model: " + ", ".join(_features(i))


def _evidence(i: IncidentView) -> str:
    # A model-level incident's evidence holds one test per named feature: say which.
    named = i.feature == MODEL_LEVEL
    return "; ".join(
        escape(
            (f"{e.feature}: " if named else "")
            + f"{e.statistic}={e.value:.3g}"
            + (f" p={e.p_value:.2g}" if math.isfinite(e.p_value) else "")
            + f" effect={e.effect_size:.3g} n={e.n_current}"
        )
        for e in i.evidence
    )


def _performance(history: PerformanceHistory, reports: list[WindowReport]) -> str:
    """Realised accuracy per window slot (labels) and expected accuracy per window (CBPE), the baseline dashed."""
    accuracy = history.baseline.get("accuracy")
    if accuracy is None:
        return (
            '<h2>Performance</h2><p id="performance-off">performance alerting is off: the reference has no model '
            "outputs and truth (<code>output:</code> and <code>truth:</code> columns) to measure a baseline on</p>"
        )
    baseline = f"baseline accuracy {accuracy.value:.3f} ± {accuracy.standard_error:.3f} (reference)"
    charts = ""
    slots = [w for w in reversed(history.windows) if "accuracy" in w.metrics]  # oldest first
    if slots:
        series = [Series("realised", [w.metrics["accuracy"] for w in slots])]
        charts += line_chart("accuracy from labels per slot", [_time(w.start) for w in slots], series, accuracy.value)
    estimated = [r for r in reports if ESTIMATED_ACCURACY in r.estimated]
    if estimated:
        series = [Series("estimated (CBPE)", [r.estimated[ESTIMATED_ACCURACY] for r in estimated])]
        labels = [_time(r.start) for r in estimated]
        charts += line_chart("accuracy expected before labels per window", labels, series, guide=accuracy.value)
    return f'<h2>Performance</h2><p id="performance-baseline">{baseline}</p><div class="charts">{charts}</div>'


def _drift(reports: list[WindowReport], monitor: Monitor) -> str:
    labels = [_time(r.start) for r in reports]  # wall time: a window's id is a grid position, not a time
    charts = []
    for signal, floor in (
        (Signal.DATA_DRIFT, monitor.policy.alarm.numeric_effect_floor),
        (Signal.PREDICTION_DRIFT, monitor.policy.alarm.numeric_effect_floor),
    ):
        by_feature: dict[str, list[tuple[float, bool]]] = {}
        for k, report in enumerate(reports):
            for f in report.features:
                if f.signal is signal:
                    column = by_feature.setdefault(f.test.feature, [(math.nan, False)] * len(reports))
                    column[k] = (f.test.effect_size, f.breached)
        largest = sorted(by_feature, key=lambda name: -max(v for v, _ in by_feature[name] if math.isfinite(v)))
        series = [
            Series(name, [v for v, _ in by_feature[name]], [b for _, b in by_feature[name]])
            for name in largest[:MAX_LINES]
        ]
        if series:
            charts.append(line_chart(f"{signal.value}: effect size per window", labels, series, guide=floor))
    return "<h2>Drift</h2>" + (f'<div class="charts">{"".join(charts)}</div>' if charts else "<p>no window yet</p>")


def _outputs(reports: list[WindowReport]) -> str:
    if not reports or not reports[-1].outputs:
        return ""
    charts = [
        bar_chart(f"{name}: latest window vs reference", d.bins, {"reference": d.reference, "current": d.current})
        for name, d in reports[-1].outputs.items()
    ]
    return f'<h2>Predictions against the reference</h2><div class="charts">{"".join(charts)}</div>'


def _operations(reports: list[WindowReport], slo: SloPolicy) -> str:
    if not reports:
        return ""
    labels = [_time(r.start) for r in reports]  # wall time: a window's id is a grid position, not a time
    latency = [
        Series(name, [r.operations.get(f"latency_{name}_ms", math.nan) for r in reports])
        for name in ("p50", "p95", "p99")
    ]
    errors = [Series("error rate", [r.operations.get("error_rate", math.nan) for r in reports])]
    charts = line_chart("latency (ms), p99 SLO dashed", labels, latency, guide=slo.latency_p99_ms)
    charts += line_chart("error rate, SLO dashed", labels, errors, guide=slo.error_rate)
    return f'<h2>Operations</h2><div class="charts">{charts}</div>'


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
