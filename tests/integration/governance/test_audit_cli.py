"""`modelyard audit verify --against-export FILE` and `--against-topic` against a running governance service on the
real broker: a healthy chain matches what was published; after the database was cut behind a published checkpoint
and governance restarted (its signer recovering from the checkpoints topic), every form of verify reports it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import InMemoryCatalog, facts, governance_settings, truncate_audit_to
from modelyard.sql.engine import create_engine

pytestmark = pytest.mark.integration


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def verify(grpc_address: str, *against: str) -> tuple[int, str]:
    """`audit verify`, once the service's signer has recovered (until then governance answers UNAVAILABLE)."""
    async with asyncio.timeout(30):
        while True:
            code, output = await cli("audit", "verify", "--governance", grpc_address, *against)
            if "UNAVAILABLE" not in output:
                return code, output
            await asyncio.sleep(0.1)


async def test_verify_against_the_export_and_the_topic(tmp_path: Path, kafka_bootstrap: str) -> None:
    catalog = InMemoryCatalog()
    for version in (1, 2, 3):
        catalog.add(facts("credit", version))
    settings = governance_settings(tmp_path, kafka_bootstrap=kafka_bootstrap, work_interval_s=0.05)
    exported = tmp_path / "credit.jsonl"
    topic = ("--against-topic", "--kafka", kafka_bootstrap)

    service = governance_bootstrap.service(governance_bootstrap.build(settings, catalog=catalog))
    async with service.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:
        grpc_address = f"127.0.0.1:{service.grpc.port}"
        for version in (1, 2, 3):
            promotion = {"model_name": "credit", "version": version, "target_alias": "staging"}
            assert (await http.post("/v1/promotions", json=promotion)).status_code == 200
        code, output = await verify(grpc_address)
        assert code == 0 and "audit trail intact" in output, output
        code, output = await cli(
            "audit", "export", "--model", "credit", "-o", str(exported), "--governance", grpc_address
        )
        assert code == 0, output
        code, output = await verify(grpc_address, "--against-export", str(exported))
        assert code == 0 and "matches 1 published checkpoints" in output, output
        async with asyncio.timeout(20):  # until the outbox relay has published the checkpoints
            while True:
                code, output = await verify(grpc_address, *topic)
                if "matches 0 published" not in output:
                    break
                await asyncio.sleep(0.1)
        assert code == 0 and "audit trail intact" in output and "published checkpoints" in output, output

    head = json.loads(exported.read_text().splitlines()[-1])["seq"]
    engine = create_engine(settings.resolved_database_url)
    truncate_audit_to(engine, head - 1)  # one entry behind the checkpoint the export carries
    engine.dispose()

    restarted = governance_bootstrap.service(
        governance_bootstrap.build(settings, catalog=catalog)
    )  # a new signer: it knows only what the topic tells it
    async with restarted.running():
        grpc_address = f"127.0.0.1:{restarted.grpc.port}"
        code, output = await verify(grpc_address)
        assert code == 1 and "the signer refuses to sign the head" in output, output
        for against in (("--against-export", str(exported)), topic):
            code, output = await verify(grpc_address, *against)
            assert code == 1 and "audit trail tampered" in output, output

        bad = tmp_path / "bad.jsonl"
        for content, error in (
            ("not json\n", "--against-export: bad.jsonl line 1: not JSON"),
            ('{"type": "header"}\n', "--against-export: bad.jsonl has no checkpoint record: not an audit export"),
            ('{"type": "checkpoint", "seq": 1}\n', "bad.jsonl line 1: the checkpoint lacks head_hash, signed_at"),
            (
                '{"type": "checkpoint", "seq": "x", "head_hash": "", "signed_at": "", "key_id": "", "signature": ""}',
                "bad.jsonl line 1: the checkpoint's seq or signed_at is malformed",
            ),
        ):
            bad.write_text(content)
            code, output = await cli("audit", "verify", "--governance", grpc_address, "--against-export", str(bad))
            assert code == 1 and error in output, output
