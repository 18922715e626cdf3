"""The REST API and the `modelyard` governance commands against a running governance service (registry faked
through the bootstrap seam, real broker and SQLite)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.cli.app import app
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.adapters.sql import schema
from modelyard.governance.domain.audit import verify_export
from modelyard.governance.testing import InMemoryCatalog, facts, governance_settings
from modelyard.sql.engine import create_engine

pytestmark = pytest.mark.integration

TOKENS = {name: f"{name}-token-0123456789abcdefghij" for name in ("bob", "carol", "dave")}
AUTH = AuthSettings(
    tokens={
        TOKENS["bob"]: TokenGrant(principal="bob", roles=frozenset({Role.PUBLISHER})),
        TOKENS["carol"]: TokenGrant(principal="carol", roles=frozenset({Role.APPROVER})),
        TOKENS["dave"]: TokenGrant(principal="dave", roles=frozenset({Role.APPROVER})),
    },
    allow_anonymous=False,
)


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[name]}"}


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def test_rest_and_cli(tmp_path: Path, kafka_bootstrap: str) -> None:
    catalog = InMemoryCatalog()
    catalog.add(facts("credit", 1))
    settings = governance_settings(tmp_path, auth=AUTH, kafka_bootstrap=kafka_bootstrap, work_interval_s=0.05)
    service = governance_bootstrap.service(governance_bootstrap.build(settings, catalog=catalog))
    async with service.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:
        created = await http.post(
            "/v1/promotions",
            json={"model_name": "credit", "version": 1, "target_alias": "production"},
            headers=bearer("bob"),
        )
        assert created.status_code == 200, created.text
        request_id = created.json()["request"]["request_id"]
        async with asyncio.timeout(20):
            while True:
                found = (await http.get(f"/v1/promotions/{request_id}", headers=bearer("carol"))).json()
                if found["request"]["state"] != "checking":
                    break
                await asyncio.sleep(0.05)

        refused = await http.post(f"/v1/promotions/{request_id}:approve", headers=bearer("bob"))
        assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
        assert "sod-requester-cannot-approve" in refused.json()["message"]
        unknown = await http.get("/v1/promotions/nope", headers=bearer("carol"))
        assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
        assert (await http.get("/v1/promotions", headers={"authorization": "Bearer wrong"})).status_code == 401

        grpc_address = f"127.0.0.1:{service.grpc.port}"
        common = ["--governance", grpc_address]
        code, output = await cli("pending", *common, "--token", TOKENS["carol"])
        assert code == 0 and request_id[:8] in output
        code, output = await cli("approve", request_id, *common, "--token", TOKENS["carol"])
        assert code == 0 and "(1/2 approvals)" in output
        code, output = await cli("approve", request_id, *common, "--token", TOKENS["carol"])
        assert code == 1 and "ALREADY_EXISTS" in output
        approved = await http.post(f"/v1/promotions/{request_id}:approve", headers=bearer("dave"))
        assert approved.json()["request"]["state"] == "approved"
        plan = (await http.get("/v1/models/credit/plan", headers=bearer("carol"))).json()["plan"]
        assert plan["primary"]["version"] == "1" and plan["revision"] == "1"

        code, output = await cli("card", "show", "credit", "--version", "1", *common, "--token", TOKENS["carol"])
        assert code == 0 and output.startswith("# Model card: credit v1") and "Approved by carol" in output

        exported = tmp_path / "credit.jsonl"
        code, output = await cli(
            "audit", "export", "--model", "credit", "-o", str(exported), *common, "--token", TOKENS["carol"]
        )
        assert code == 0, output
        records = [json.loads(line) for line in exported.read_text().splitlines()]
        assert verify_export(records).ok
        forged = [{**r, "version": 7} if r["type"] == "entry" else r for r in records]
        assert "does not match its hash" in verify_export(forged).problem
        assert {r["kind"] for r in records if r["type"] == "entry"} >= {"modelyard.events.v1.DeploymentApproved"}

        code, output = await cli("audit", "verify", *common, "--token", TOKENS["carol"])
        assert code == 0 and "audit trail intact" in output
        engine = create_engine(settings.resolved_database_url)
        with engine.begin() as connection:
            connection.execute(schema.audit_log.update().where(schema.audit_log.c.seq == 2).values(source="x"))
        engine.dispose()
        code, output = await cli("audit", "verify", *common, "--token", TOKENS["carol"])
        assert code == 1 and "first bad entry 2: entry 2: its content does not match its hash" in output
