"""All four services over TLS with mutual TLS, on their real gRPC and HTTP servers: a caller with the stack's CA and
a client certificate gets answers (gRPC health and an API call, HTTPS probes); a caller without a client
certificate, with a stranger's client certificate, in plaintext, or trusting another CA is refused at the
handshake. Governance's registry client reaches the registry over mutual TLS too."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelyard.contracts.governance.v1 import governance_service_pb2 as governance_pb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as governance_grpc
from modelyard.contracts.inference import grpc_service_pb2 as inference_pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
from modelyard.contracts.monitor.v1 import monitor_service_pb2 as monitor_pb
from modelyard.contracts.monitor.v1 import monitor_service_pb2_grpc as monitor_grpc
from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as registry_grpc
from modelyard.governance.adapters.registry import RegistryCatalog
from modelyard.governance.domain.errors import CatalogUnavailable, NotFound
from modelyard.registry import bootstrap as registry_bootstrap
from modelyard.registry.testing import registry_settings
from modelyard.runtime import StartupError
from modelyard.testing.services import four_services
from modelyard.testing.tls import TlsMaterial
from modelyard.tls import ClientTls, grpc_aio_channel

pytestmark = pytest.mark.integration

TIMEOUT_S = 5.0


async def api_call(name: str, channel: grpc.aio.Channel) -> None:
    """One call of the service's own API that any caller may make, answered by its handler."""
    if name == "registry":
        await registry_grpc.RegistryServiceStub(channel).ListRegisteredModels(  # type: ignore[no-untyped-call]
            registry_pb.ListRegisteredModelsRequest(), timeout=TIMEOUT_S
        )
    elif name == "governance":
        await governance_grpc.GovernanceServiceStub(channel).ListPending(  # type: ignore[no-untyped-call]
            governance_pb.ListPendingRequest(), timeout=TIMEOUT_S
        )
    elif name == "monitor":
        await monitor_grpc.MonitorServiceStub(channel).ListIncidents(  # type: ignore[no-untyped-call]
            monitor_pb.ListIncidentsRequest(), timeout=TIMEOUT_S
        )
    else:
        await inference_grpc.GRPCInferenceServiceStub(channel).ServerLive(  # type: ignore[no-untyped-call]
            inference_pb.ServerLiveRequest(), timeout=TIMEOUT_S
        )


async def grpc_outcome(address: str, tls: ClientTls | None) -> str:
    async with grpc_aio_channel(address, tls) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        assert response.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
        return "answered"


async def https_outcome(url: str, verify: Any) -> str:
    async with httpx.AsyncClient(verify=verify, timeout=TIMEOUT_S) as client:
        try:
            response = await client.get(url)
        except httpx.TransportError as exc:
            return f"refused ({type(exc).__name__})"
    return f"HTTP {response.status_code}"


async def probe(service: str, http_port: int, tls: dict[str, Any]) -> int:
    """`python -m modelyard.runtime.probe SERVICE /healthz`'s exit status, in a container's environment."""
    prefix = f"MODELYARD_{service.upper()}_"
    env = {f"{prefix}TLS__{name.upper()}": str(value) for name, value in tls.items()}
    env |= {f"{prefix}HTTP_PORT": str(http_port), "PATH": os.environ.get("PATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelyard.runtime.probe", service, "/healthz", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def test_every_service_serves_mutual_tls_and_refuses_everyone_else(
    tmp_path: Path, kafka_bootstrap: str, tls_material: TlsMaterial
) -> None:
    pki = tls_material.pki
    trusted = tls_material.client
    no_client_cert = ClientTls(pki.ca_file)
    stranger_cert = ClientTls(
        pki.ca_file, tls_material.stranger_client.cert_file, tls_material.stranger_client.key_file
    )
    wrong_ca = ClientTls(tls_material.stranger_ca_file, pki.client.cert_file, pki.client.key_file)
    async with four_services(tmp_path, kafka_bootstrap, tls=tls_material.server_settings()) as services:
        outcomes: dict[str, dict[str, str]] = {}
        for name, service in services.items():
            address = f"localhost:{service.grpc.port}"
            base = f"{{}}://127.0.0.1:{service.http.port}/healthz"
            async with grpc_aio_channel(address, trusted) as channel:
                await api_call(name, channel)
            async with httpx.AsyncClient(verify=trusted.ssl_context(), timeout=TIMEOUT_S) as client:
                readyz = await client.get(f"https://127.0.0.1:{service.http.port}/readyz")
            assert readyz.status_code in (200, 503) and "ready" in readyz.json(), name  # the probe answers over TLS
            outcomes[name] = {
                "gRPC mTLS": await grpc_outcome(address, trusted),
                "gRPC without client cert": await grpc_outcome(address, no_client_cert),
                "gRPC stranger's client cert": await grpc_outcome(address, stranger_cert),
                "gRPC trusting another CA": await grpc_outcome(address, wrong_ca),
                "gRPC plaintext": await grpc_outcome(address, None),
                "HTTPS mTLS": await https_outcome(base.format("https"), trusted.ssl_context()),
                "HTTPS without client cert": await https_outcome(base.format("https"), no_client_cert.ssl_context()),
                "HTTPS stranger's client cert": await https_outcome(base.format("https"), stranger_cert.ssl_context()),
                "HTTPS trusting another CA": await https_outcome(base.format("https"), wrong_ca.ssl_context()),
                "HTTP plaintext": await https_outcome(base.format("http"), True),
            }
        for name, seen in outcomes.items():
            answered = {check: outcome for check, outcome in seen.items() if "mTLS" in check}
            assert answered == {"gRPC mTLS": "answered", "HTTPS mTLS": "HTTP 200"}, name
            refused = {check: outcome for check, outcome in seen.items() if check not in answered}
            assert all(o == "UNAVAILABLE" or o.startswith("refused") for o in refused.values()), (name, refused)

        # The containers' probe, as Docker and the kubelet run it: the service's settings from the environment, its
        # client certificate presented; without one, mutual TLS refuses it.
        registry_http = services["registry"].http.port
        assert await probe("registry", registry_http, tls_material.server_settings()) == 0
        without_client_cert = {k: v for k, v in tls_material.server_settings().items() if not k.startswith("client_")}
        assert await probe("registry", registry_http, without_client_cert | {"client_ca_file": pki.ca_file}) == 1

        # Governance's client of the registry, as its bootstrap builds it: mutual TLS answers, plaintext cannot.
        registry = f"localhost:{services['registry'].grpc.port}"
        # (Blocking, as governance's use cases call it from worker threads: here too, off the servers' loop.)
        catalog = RegistryCatalog(registry, tls=trusted)
        with pytest.raises(NotFound):
            await asyncio.to_thread(catalog.get_version, "no-such-model", 1)
        catalog.close()
        plaintext = RegistryCatalog(registry)
        with pytest.raises(CatalogUnavailable, match="UNAVAILABLE"):
            await asyncio.to_thread(plaintext.get_version, "no-such-model", 1)
        plaintext.close()


async def test_a_certificate_that_cannot_be_loaded_stops_the_start_with_its_path(
    tmp_path: Path, kafka_bootstrap: str, tls_material: TlsMaterial
) -> None:
    garbage = tmp_path / "server.crt"
    garbage.write_text("not a certificate")
    tls = tls_material.server_settings() | {"cert_file": garbage}
    service = registry_bootstrap.service(
        registry_bootstrap.build(registry_settings(tmp_path, kafka_bootstrap=kafka_bootstrap, tls=tls))
    )
    with pytest.raises(StartupError, match=f"HTTP server: cannot load its TLS files \\({garbage}\\)"):
        await service.start()
