"""docker-compose.yml and the Dockerfile, checked against the services' settings classes.

No Docker engine runs here, so the stack is validated statically: every service runs its module, publishes and
probes the ports its settings use, sets only environment variables its settings class reads, and starts with a
valid production configuration when fed .env.example.
"""

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from modelyard.governance.domain.policy import load_policy

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[3]
SERVICES = ("registry", "serving", "monitor", "governance")
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value.strip("'")  # single quotes: a literal value, as compose reads it
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        assert operator != ":?", f"{name} is required: {argument}"
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", substitute, value)


def environment(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in COMPOSE["services"][service]["environment"].items()}


def effective_ports(config_reference: ModuleType, service: str, env: dict[str, str]) -> tuple[int, int]:
    """(grpc, http): the environment's override, else the settings class's default."""
    fields = config_reference.SERVICES[service].model_fields
    prefix = f"MODELYARD_{service.upper()}_"
    return (
        int(env.get(f"{prefix}GRPC_PORT", fields["grpc_port"].default)),
        int(env.get(f"{prefix}HTTP_PORT", fields["http_port"].default)),
    )


def dockerfile_stages() -> dict[str, dict[str, Any]]:
    """Stage name -> its base (image or stage) and its instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            base, _, name = arguments.partition(" AS ")
            current = stages[name.strip()] = {"base": base.strip(), "instructions": []}
        elif current is not None:
            current["instructions"].append((instruction.upper(), arguments))
    return stages


def stage_instructions(stages: dict[str, dict[str, Any]], name: str) -> list[tuple[str, str]]:
    """A stage's instructions after those it inherits from its base stages."""
    stage = stages[name]
    inherited = stage_instructions(stages, stage["base"]) if stage["base"] in stages else []
    return [*inherited, *stage["instructions"]]


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs_its_module_from_its_own_build_target(service: str) -> None:
    spec = COMPOSE["services"][service]
    assert spec["build"]["target"] == service
    assert spec["command"] == ["python", "-m", f"modelyard.{service}"]
    cmd = [args for instruction, args in dockerfile_stages()[service]["instructions"] if instruction == "CMD"]
    assert cmd == [f'["python", "-m", "modelyard.{service}"]']


@pytest.mark.parametrize("service", SERVICES)
def test_environment_names_are_fields_of_the_settings_class(config_reference: ModuleType, service: str) -> None:
    known = config_reference.environment_variables(config_reference.SERVICES[service])
    unknown = set(environment(service)) - set(known)
    assert not unknown, f"{service} sets variables its settings class does not read: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICES)
def test_environment_is_a_valid_production_configuration(
    config_reference: ModuleType, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instantiating the settings catches missing required settings and the production profile's refusals.
    The event keys and tokens are filled in as an operator must (their placeholders are refused, as the next tests
    show)."""
    variables = filled_in_tokens(env_example()) | filled_in_event_keys()
    for name, value in environment(service).items():
        monkeypatch.setenv(name, interpolate(value, variables))
    settings = config_reference.SERVICES[service]()
    assert settings.profile == "production"
    assert settings.host == "0.0.0.0"
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.kafka_idempotence, "real Kafka: the idempotent producer must be on"
    if "database_url" in type(settings).model_fields:
        assert settings.database_url.startswith("postgresql+psycopg://")


def filled_in_event_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for signer in ("GOVERNANCE", "MONITOR"):
        key = Ed25519PrivateKey.generate()
        keys[f"{signer}_EVENT_SIGNING_KEY"] = key.private_bytes_raw().hex()
        keys[f"{signer}_EVENT_PUBLIC_KEY"] = key.public_key().public_bytes_raw().hex()
    return keys


def filled_in_tokens(variables: dict[str, str]) -> dict[str, str]:
    """Every placeholder token replaced by a random one, the same placeholder by the same token everywhere."""
    tokens: dict[str, str] = {}

    def token(match: re.Match[str]) -> str:
        return tokens.setdefault(match.group(0), secrets.token_urlsafe(32))

    return {name: re.sub(r"replace-with-a-long-random-token-[\w-]+", token, value) for name, value in variables.items()}


@pytest.mark.parametrize("service", SERVICES)
def test_placeholder_tokens_are_refused(
    monkeypatch: pytest.MonkeyPatch, config_reference: ModuleType, service: str
) -> None:
    variables = env_example() | filled_in_event_keys()
    for name, value in environment(service).items():
        monkeypatch.setenv(name, interpolate(value, variables))
    with pytest.raises(ValidationError, match="looks like a placeholder"):
        config_reference.SERVICES[service]()


def test_placeholder_event_keys_are_refused(monkeypatch: pytest.MonkeyPatch, config_reference: ModuleType) -> None:
    variables = filled_in_tokens(env_example())
    for name, value in environment("serving").items():
        monkeypatch.setenv(name, interpolate(value, variables))
    with pytest.raises(ValidationError, match="an Ed25519 public key is 64 hex characters"):
        config_reference.SERVICES["serving"]()


@pytest.mark.parametrize("service", SERVICES)
def test_published_ports_are_the_ones_the_service_listens_on(config_reference: ModuleType, service: str) -> None:
    grpc, http = effective_ports(config_reference, service, environment(service))
    published = {int(mapping.rpartition(":")[2]) for mapping in COMPOSE["services"][service]["ports"]}
    assert published == {grpc, http}
    exposed = [args for instruction, args in dockerfile_stages()[service]["instructions"] if instruction == "EXPOSE"]
    assert exposed == [f"{grpc} {http}"]


def test_only_the_inference_ports_are_published_beyond_loopback() -> None:
    exposed = {
        (name, mapping)
        for name, service in COMPOSE["services"].items()
        for mapping in service.get("ports", [])
        if not str(mapping).startswith("127.0.0.1:")
    }
    assert exposed == {("serving", "8001:8001"), ("serving", "8000:8000")}


@pytest.mark.parametrize("service", SERVICES)
def test_healthchecks_probe_readyz_as_the_service_settings_say(service: str) -> None:
    # The probe reads the service's own settings (port, TLS, its client certificate for mutual TLS).
    probe = ["python", "-m", "modelyard.runtime.probe", service]
    assert COMPOSE["services"][service]["healthcheck"]["test"] == ["CMD", *probe]
    [(_, check)] = [step for step in dockerfile_stages()[service]["instructions"] if step[0] == "HEALTHCHECK"]
    assert check.endswith(f"CMD {json.dumps(probe)}")


@pytest.mark.parametrize("service", SERVICES)
def test_services_serve_mutual_tls_from_the_mounted_directory(service: str) -> None:
    spec = COMPOSE["services"][service]
    assert "./deploy/compose/tls:/etc/modelyard/tls:ro" in spec["volumes"]
    tls = {name.rpartition("__")[2]: value for name, value in environment(service).items() if "_TLS__" in name}
    assert tls == {
        "CERT_FILE": "/etc/modelyard/tls/server.crt",
        "KEY_FILE": "/etc/modelyard/tls/server.key",
        "CLIENT_CA_FILE": "/etc/modelyard/tls/ca.crt",
        "CA_FILE": "/etc/modelyard/tls/ca.crt",
        "CLIENT_CERT_FILE": "/etc/modelyard/tls/client.crt",
        "CLIENT_KEY_FILE": "/etc/modelyard/tls/client.key",
    }


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_are_awaited_until_healthy(service: str) -> None:
    depends_on = COMPOSE["services"][service]["depends_on"]
    assert {"kafka"} <= depends_on.keys()
    for dependency, condition in depends_on.items():
        assert condition == {"condition": "service_healthy"}, f"{service} -> {dependency}"
        assert "healthcheck" in COMPOSE["services"][dependency], f"{dependency} has no healthcheck to wait for"


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_as_a_non_root_user(service: str) -> None:
    users = [args for instruction, args in stage_instructions(dockerfile_stages(), service) if instruction == "USER"]
    assert users, f"the {service} image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_the_service_metrics(config_reference: ModuleType, service: str) -> None:
    _, http = effective_ports(config_reference, service, environment(service))
    scrape = yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text())
    targets = {
        target for job in scrape["scrape_configs"] for group in job["static_configs"] for target in group["targets"]
    }
    assert f"{service}:{http}" in targets


def test_env_example_has_every_variable_compose_reads_and_no_other() -> None:
    read = set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    assert read == set(env_example())


def test_kafka_is_a_pinned_single_node_kraft_broker() -> None:
    kafka = COMPOSE["services"]["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert tag and tag != "latest"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_policy_mounted_for_governance_is_valid() -> None:
    mounted = [v for v in COMPOSE["services"]["governance"]["volumes"] if v.endswith(":/etc/modelyard/policy.yaml:ro")]
    [volume] = mounted
    load_policy(REPO / volume.split(":")[0])


def test_grafana_dashboard_and_collector_config_are_mounted_files() -> None:
    for service in ("grafana", "otel-collector", "prometheus"):
        for volume in COMPOSE["services"][service]["volumes"]:
            assert (REPO / volume.split(":")[0]).exists(), f"{service} mounts a missing {volume}"


def compose_command() -> list[str] | None:
    """`docker compose` or `docker-compose`, whichever answers; `config` needs no engine."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]):
            probe = subprocess.run([*command, "version"], capture_output=True, timeout=10)
            if probe.returncode == 0:
                return command
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed: the static checks above still ran")
    result = subprocess.run(
        [*command, "--env-file", ".env.example", "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
