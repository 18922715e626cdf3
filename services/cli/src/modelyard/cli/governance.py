"""`modelyard promote|approve|reject|pending|audit|card`: governance from the command line, over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from modelyard.cli import published
from modelyard.cli.connection import client_tls
from modelyard.contracts.governance.v1 import governance_service_pb2 as pb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as pb_grpc
from modelyard.tls import grpc_channel

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
card_app = typer.Typer(help="Model cards.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)

Governance = Annotated[
    str, typer.Option("--governance", envvar="MODELYARD_GOVERNANCE_ADDRESS", help="governance gRPC address")
]
Token = Annotated[str, typer.Option("--token", envvar="MODELYARD_TOKEN", help="bearer token", show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the governance commands to the `modelyard` command."""
    for command in (promote, approve, reject, pending):
        app.command()(command)
    app.add_typer(audit_app, name="audit")
    app.add_typer(card_app, name="card")


@contextlib.contextmanager
def _governance(address: str, token: str) -> Iterator[Callable[[str, Message], Any]]:
    """`rpc(name, request)`: one call of the named GovernanceService method; a failure becomes a one-line error
    and exit status 1."""
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc_channel(address, client_tls()) as channel:
        stub = pb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]

        def rpc(name: str, request: Message) -> Any:
            try:
                return getattr(stub, name)(request, metadata=metadata)
            except grpc.RpcError as exc:
                _fail(f"{exc.code().name}: {exc.details()}")

        yield rpc


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _show(request: pb.PromotionRequest) -> None:
    version = request.version
    approvals = f"{len(request.approvers)}/{request.required_approvals} approvals"
    reason = f" - {request.reason}" if request.reason else ""
    out.print(
        f"request {request.request_id}: {version.model_name} v{version.version} -> {request.target_alias}: "
        f"[bold]{request.state}[/bold] ({approvals}){reason}"
    )
    for check in request.checks:
        mark = "[green]passed[/green]" if check.passed else "[red]failed[/red]"
        out.print(f"  check {check.name}: {mark} {check.detail}")


def promote(
    model: str,
    version: Annotated[int, typer.Option("--version", "-v", help="version to promote")],
    alias: Annotated[str, typer.Option("--alias", help="target alias")] = "production",
    governance: Governance = "127.0.0.1:50054",
    token: Token = "",
) -> None:
    """Ask to promote a model version to an alias (checks run, then approvals are collected)."""
    with _governance(governance, token) as rpc:
        request = pb.RequestPromotionRequest(model_name=model, version=version, target_alias=alias)
        _show(rpc("RequestPromotion", request).request)


def approve(request_id: str, governance: Governance = "127.0.0.1:50054", token: Token = "") -> None:
    """Approve a pending promotion request (never your own, nor a version you registered)."""
    with _governance(governance, token) as rpc:
        _show(rpc("Approve", pb.ApproveRequest(request_id=request_id)).request)


def reject(
    request_id: str,
    reason: Annotated[str, typer.Option("--reason", help="why, for the record")],
    governance: Governance = "127.0.0.1:50054",
    token: Token = "",
) -> None:
    """Reject a pending promotion request (its requester may withdraw it this way too)."""
    with _governance(governance, token) as rpc:
        _show(rpc("Reject", pb.RejectRequest(request_id=request_id, reason=reason)).request)


def pending(
    model: Annotated[str, typer.Option("--model", help="only this model")] = "",
    governance: Governance = "127.0.0.1:50054",
    token: Token = "",
) -> None:
    """Promotion requests still checking or awaiting approval."""
    with _governance(governance, token) as rpc:
        requests = rpc("ListPending", pb.ListPendingRequest(model_name=model)).requests
    table = Table("request", "model", "version", "alias", "state", "approvals", "requested by")
    for r in requests:
        approvals = f"{len(r.approvers)}/{r.required_approvals}"
        table.add_row(
            r.request_id,
            r.version.model_name,
            str(r.version.version),
            r.target_alias,
            r.state,
            approvals,
            r.requested_by,
        )
    out.print(table)


@audit_app.command("verify")
def audit_verify(
    against_export: Annotated[
        Path | None,
        typer.Option("--against-export", help="also compare with the checkpoint of an export made earlier"),
    ] = None,
    against_topic: Annotated[
        bool, typer.Option("--against-topic", help="also compare with every checkpoint on the checkpoints topic")
    ] = False,
    kafka: Annotated[
        str, typer.Option("--kafka", envvar="MODELYARD_KAFKA_BOOTSTRAP", help="Kafka bootstrap, for --against-topic")
    ] = "127.0.0.1:9092",
    governance: Governance = "127.0.0.1:50054",
    token: Token = "",
) -> None:
    """Check the whole hash chain and every signed checkpoint; name the first tampered entry. With --against-*,
    also check that the database holds, unchanged, every checkpoint that was published outside it."""
    request = pb.VerifyAuditRequest()
    if against_export is not None:
        try:
            request.published.extend(published.from_export(against_export))
        except published.BadExport as exc:
            _fail(f"--against-export: {exc}")
    if against_topic:
        try:
            request.published.extend(asyncio.run(published.from_topic(kafka)))
        except Exception as exc:  # aiokafka raises several unrelated types for an unreachable broker
            _fail(f"--against-topic: cannot read the checkpoints topic at {kafka}: {type(exc).__name__}: {exc}")
    with _governance(governance, token) as rpc:
        result = rpc("VerifyAudit", request)
    if not result.ok:
        first_bad = f"first bad entry {result.first_bad_seq}: " if result.first_bad_seq else ""
        _fail(f"audit trail tampered: {first_bad}{result.problem}")
    out.print(f"audit trail intact: {result.entries} entries, {result.checkpoints} signed checkpoints")
    if against_export is not None or against_topic:
        foreign = f" ({result.foreign_checkpoints} signed with other keys, not compared)"
        out.print(
            f"matches {result.published_checkpoints} published checkpoints"
            + (foreign if result.foreign_checkpoints else "")
        )


@audit_app.command("export")
def audit_export(
    model: Annotated[str, typer.Option("--model", help="the model whose entries to export")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON Lines file to write")],
    since: Annotated[datetime | None, typer.Option("--from", help="first time (ISO 8601)")] = None,
    until: Annotated[datetime | None, typer.Option("--to", help="last time (ISO 8601)")] = None,
    governance: Governance = "127.0.0.1:50054",
    token: Token = "",
) -> None:
    """Write a self-verifying JSON Lines slice of the audit trail about one model."""
    request = pb.ExportAuditRequest(model_name=model)
    if since is not None:
        request.since.FromDatetime(since.astimezone())
    if until is not None:
        request.until.FromDatetime(until.astimezone())
    with _governance(governance, token) as rpc:
        lines = rpc("ExportAudit", request).lines
    output.write_text("".join(line + "\n" for line in lines))
    entries = sum(1 for line in lines if json.loads(line)["type"] == "entry")
    out.print(f"wrote {entries} entries about {model} (and {len(lines) - entries - 2} links) to {output}")


@card_app.command("show")
def card_show(
    model: str,
    version: Annotated[int, typer.Option("--version", "-v", help="model version")],
    as_json: Annotated[bool, typer.Option("--json", help="Model Card Toolkit JSON instead of Markdown")] = False,
    governance: Governance = "127.0.0.1:50054",
    token: Token = "",
) -> None:
    """A version's model card."""
    with _governance(governance, token) as rpc:
        card = rpc("GetModelCard", pb.GetModelCardRequest(model_name=model, version=version))
    print(card.json if as_json else card.markdown)
