"""`modelyard trace REQUEST_ID` and `modelyard trace verify DOC --audit-export FILE`: prediction provenance.

Governance answers a trace (it asks the monitor for the logged prediction) as a JSON document signed with its
audit key; `verify` checks one offline, against an audit export of the model (`modelyard audit export`), with
nothing but the two files. A request id that is literally "verify" or "show" is traced with `trace show ID`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from modelyard.cli.governance import Governance, Token, _fail, _governance, out
from modelyard.contracts.governance.v1 import governance_service_pb2 as pb


class _TraceGroup(TyperGroup):
    """`trace ID` means `trace show ID`: a first argument that is no subcommand is a request id."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer vendors its own click Context
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


Serving = Annotated[
    str, typer.Option("--serving", envvar="MODELYARD_SERVING_ADDRESS", help="serving gRPC address (for --explain)")
]

trace_app = typer.Typer(
    cls=_TraceGroup, help="Prediction provenance: what stood behind one prediction.", no_args_is_help=True
)


@trace_app.command("show")
def show(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="print the signed trace document")] = False,
    export: Annotated[Path | None, typer.Option("--export", help="write the signed trace document here")] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="add the prediction's feature attributions, computed now by serving")
    ] = False,
    governance: Governance = "127.0.0.1:50054",
    serving: Serving = "127.0.0.1:8001",
    token: Token = "",
) -> None:
    """Trace one prediction: model, version, digest, plan revision, approvals, policy, evidence, window, incidents;
    with --explain, its attributions (not signed: `{"trace": <signed trace>, "explanation": ...}` in the JSON)."""
    from modelyard.cli import trace_explain

    with _governance(governance, token) as rpc:
        answer = rpc("TracePrediction", pb.TracePredictionRequest(request_id=request_id))
    trace = json.loads(answer.document)
    explanation = trace_explain.explain(trace, serving, token) if explain else None
    document = answer.document if explanation is None else json.dumps({"trace": trace, "explanation": explanation})
    if export is not None:
        export.write_text(document + "\n", encoding="utf-8")
    if as_json:
        out.print_json(document)
    else:
        _render(trace)
        if explanation is not None:
            trace_explain.render(explanation)
    if export is not None:
        out.print(f"signed trace (key {answer.key_id}) written to {export}")


@trace_app.command("verify")
def verify(
    document: Annotated[Path, typer.Argument(help="a trace written by `modelyard trace ID --export FILE`")],
    audit_export: Annotated[
        Path, typer.Option("--audit-export", help="an audit export of the model (`modelyard audit export`)")
    ],
) -> None:
    """Verify a signed trace offline: the export's hash chain, the signature under the export's key, and that
    every audit entry the trace cites is in the export."""
    from modelyard.governance.domain.provenance import verify_trace  # the workspace has it; the core does not need it

    trace = _json_object(document)
    explanation = trace.get("explanation") if "trace" in trace and "signature" not in trace else None
    if explanation is not None:  # `--explain`'s export: the signed trace, and beside it what is not signed
        trace = trace["trace"] if isinstance(trace["trace"], dict) else {}
    records = [_json_line(audit_export, n, line) for n, line in enumerate(_lines(audit_export), 1) if line.strip()]
    result = verify_trace(trace, records)
    if not result.ok:
        _fail(f"trace {document.name} does not verify: {result.problem}")
    cited = len(trace.get("audit_entries") or [])
    out.print(
        f"trace of {trace['request_id']} verifies: signed by key {trace['key_id']}, {cited} cited audit entries in "
        f"the export's hash chain"
    )
    if explanation is not None:
        out.print(f"the explanation beside it is not signed (computed {explanation.get('computed_at')}): not evidence")


def _render(trace: dict[str, Any]) -> None:
    table = Table("", "", show_header=False, box=None)
    table.add_row("request", trace["request_id"])
    table.add_row("model", f"{trace['model_name']} v{trace['version']}")
    table.add_row("artifact digest", trace["artifact_digest"])
    table.add_row("plan revision", str(trace["plan_revision"] or "(not in the record)"))
    table.add_row("event time", trace["event_time"])
    promotion = trace.get("promotion")
    if promotion:
        approvals = ", ".join(f"{a['approver']} at {a['at']}" for a in promotion["approvals"]) or "none required"
        table.add_row("promotion", f"{promotion['request_id']} -> {promotion['target_alias']} ({promotion['state']})")
        table.add_row("approved by", approvals)
        table.add_row("policy hash", promotion["policy_hash"])
        for check in promotion["checks"]:
            table.add_row(f"check {check['name']}", f"{'passed' if check['passed'] else 'failed'}: {check['detail']}")
        if not promotion["digest_matches"]:
            table.add_row("[red]warning[/red]", f"the approval was for digest {promotion['approved_digest']}")
    else:
        table.add_row("promotion", "no approved promotion of this version on record")
    monitor = trace.get("monitor") or {}
    window = monitor.get("window")
    table.add_row("window", _window(window) if window else "none (the prediction came too late for any window)")
    incidents = monitor.get("incidents") or []
    table.add_row("incidents then", ", ".join(_incident(i) for i in incidents) or "none open")
    prediction = monitor.get("prediction") or {}
    truth = prediction.get("label", prediction.get("target"))
    table.add_row("label", "not joined yet" if truth is None else str(truth))
    table.add_row("signed by", f"key {trace['key_id']} ({len(trace['audit_entries'])} audit entries cited)")
    out.print(table)


def _window(window: dict[str, Any]) -> str:
    state = f"closed by {window['closed_by']}" if window.get("closed_by") else "open"
    return f"{window.get('window_id', '')} [{window.get('start', '')} .. {window.get('end', '')}) {state}"


def _incident(incident: dict[str, Any]) -> str:
    return f"{incident['incident_id']} ({incident.get('signal', '')}, {incident.get('severity', '')})"


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path.name}: {type(exc).__name__}")


def _json_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        _fail(f"{path.name} line {number}: not JSON")
    if not isinstance(record, dict) or "type" not in record:
        _fail(f"{path.name} line {number}: not an audit export record (no type)")
    return record


def _json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads("\n".join(_lines(path)))
    except json.JSONDecodeError:
        _fail(f"{path.name}: not JSON")
    if not isinstance(document, dict):
        _fail(f"{path.name}: not a trace document (a JSON object)")
    return document
