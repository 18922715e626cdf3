"""What `modelyard up` (and `modelyard demo`) put in each service's environment: `--env` options, and where
the registry is for the services that call it."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.cli.stack import (
    StackError,
    parse_env_options,
    plan_ports,
    service_env,
    settings_class,
    stack_pki,
    tls_env,
)
from modelyard.governance.config import GovernanceSettings
from modelyard.monitor.config import MonitorSettings
from modelyard.serving.config import ServingSettings
from modelyard.tls import ClientTls

pytestmark = pytest.mark.unit


def test_env_options_are_prefixed_per_service() -> None:
    parsed = parse_env_options(
        ["monitor.window_max_events=100", 'registry.auth={"allow_anonymous": false}', "serving.registry_token=a=b"]
    )
    assert parsed == {
        "monitor": {"MODELYARD_MONITOR_WINDOW_MAX_EVENTS": "100"},
        "registry": {"MODELYARD_REGISTRY_AUTH": '{"allow_anonymous": false}'},
        "serving": {"MODELYARD_SERVING_REGISTRY_TOKEN": "a=b"},  # only the first '=' separates
    }


@pytest.mark.parametrize("option", ["window_max_events=1", "kafka.x=1", "monitor.=1", "monitor.a-b=1", "monitor.x"])
def test_bad_env_options_are_refused(option: str) -> None:
    with pytest.raises(StackError, match=r"SERVICE\.KEY=VALUE"):
        parse_env_options([option])


def test_services_that_call_the_registry_find_this_stacks_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_ports(47000, [])
    env = {
        service: service_env(service, "0.0.0.0", plan, tmp_path, "127.0.0.1:9", idempotence=False)
        for service in ("serving", "monitor", "governance")
    }
    assert env["governance"]["MODELYARD_GOVERNANCE_REGISTRY_ADDRESS"] == "127.0.0.1:47000"
    assert env["serving"]["MODELYARD_SERVING_REGISTRY_ADDRESS"] == "127.0.0.1:47000"
    assert env["monitor"]["MODELYARD_MONITOR_REGISTRY_ADDRESS"] == "127.0.0.1:47000"
    assert env["monitor"]["MODELYARD_MONITOR_REFERENCE_SOURCE"] == "registry"
    assert "MODELYARD_SERVING_REFERENCE_SOURCE" not in env["serving"]
    # ...and the settings classes read what was set.
    for variables in env.values():
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
    assert ServingSettings().registry_address == GovernanceSettings().registry_address == "127.0.0.1:47000"
    assert MonitorSettings().registry_address == "127.0.0.1:47000"
    assert MonitorSettings().reference_source == "registry"
    assert MonitorSettings().grpc_port == plan["monitor"]["grpc"]


def test_serving_in_a_stack_takes_its_plans_from_this_stacks_governance(tmp_path: Path) -> None:
    plan = plan_ports(47000, [])
    env = service_env("serving", "0.0.0.0", plan, tmp_path, "127.0.0.1:9", idempotence=False)
    assert env["MODELYARD_SERVING_GOVERNANCE_ADDRESS"] == f"127.0.0.1:{plan['governance']['grpc']}"
    assert env["MODELYARD_SERVING_PLAN_SOURCE"] == "governance"
    assert env["MODELYARD_SERVING_ARTIFACT_SOURCE"] == "registry"  # an approved model is served out of the box
    governance = service_env("governance", "0.0.0.0", plan, tmp_path, "127.0.0.1:9", idempotence=False)
    assert "MODELYARD_GOVERNANCE_PLAN_SOURCE" not in governance
    assert not any(key.endswith(("GOVERNANCE_ADDRESS", "SERVING_ADDRESS")) for key in governance)


@pytest.mark.parametrize("service", ["registry", "serving", "monitor", "governance"])
def test_up_tls_gives_every_service_mutual_tls_and_a_client_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    pki = stack_pki(tmp_path / "tls", "0.0.0.0")
    for name, value in tls_env(service, pki).items():
        monkeypatch.setenv(name, value)
    tls = settings_class(service)().tls
    assert tls.uvicorn_options()["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert tls.client == ClientTls(pki.ca_file, pki.client.cert_file, pki.client.key_file)
    assert tls_env(service, None) == {}


def test_the_stack_pki_is_kept_across_runs_and_never_overwrites_a_partial_set(tmp_path: Path) -> None:
    first = stack_pki(tmp_path / "tls", "127.0.0.1")
    ca = first.ca_file.read_bytes()
    assert {oct(path.stat().st_mode & 0o777) for path in (first.server.key_file, first.client.key_file)} == {"0o600"}
    server = x509.load_pem_x509_certificate(first.server.cert_file.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(map(str, names.get_values_for_type(x509.IPAddress))) == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert stack_pki(tmp_path / "tls", "127.0.0.1").ca_file.read_bytes() == ca  # the CLI's trust stays valid
    first.client.key_file.unlink()
    partial = "has ca.crt, server.crt, server.key, client.crt but not client.key"
    with pytest.raises(StackError, match=re.escape(partial)):
        stack_pki(tmp_path / "tls", "127.0.0.1")
    assert first.ca_file.read_bytes() == ca


def test_a_client_certificate_without_a_ca_is_refused_by_the_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--client-cert", str(tmp_path / "c.crt"), "status"])
    assert result.exit_code == 2
    text = re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)  # rich's box, wrapped
    assert "a client certificate is only sent over TLS: give --ca-file too" in text
