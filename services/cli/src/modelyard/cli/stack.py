"""The local stack that `modelyard up` runs and `modelyard status` inspects: which services, on which ports,
and the state file (`<data-dir>/up.json`) that connects the two commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from modelyard.runtime.ports import client_host, format_address
from modelyard.settings import ServiceSettings
from modelyard.tls import ClientTls

if TYPE_CHECKING:
    from modelyard.certificates import LocalPki
    from modelyard.events.signing import TrustedKeys

SERVICES = ("registry", "serving", "monitor", "governance")
SIGNERS = ("governance", "monitor")  # the producers of signed events (decisions, incidents)
PORT_KINDS = ("grpc", "http")
STATE_FILE = "up.json"
DEFAULT_DATA_DIR = Path(".modelyard")


class StackError(Exception):
    """A problem the user can fix (port taken, bad option); printed without a traceback."""


def settings_class(service: str) -> type[ServiceSettings]:
    """The service's settings: the source of its env prefix and default ports. Imported when asked for: a service's
    config module imports its domain (the monitor's: scipy), which every `modelyard` command would pay at start."""
    if service == "registry":
        from modelyard.registry.config import RegistrySettings

        return RegistrySettings
    if service == "serving":
        from modelyard.serving.config import ServingSettings

        return ServingSettings
    if service == "monitor":
        from modelyard.monitor.config import MonitorSettings

        return MonitorSettings
    if service == "governance":
        from modelyard.governance.config import GovernanceSettings

        return GovernanceSettings
    raise KeyError(service)


def env_prefix(service: str) -> str:
    return str(settings_class(service).model_config.get("env_prefix", ""))


def default_ports(service: str) -> dict[str, int]:
    fields = settings_class(service).model_fields
    return {kind: int(fields[f"{kind}_port"].default) for kind in PORT_KINDS}


def plan_ports(base_port: int | None, overrides: list[str]) -> dict[str, dict[str, int]]:
    """{service: {"grpc": port, "http": port}}: each service's defaults, or consecutive ports from `base_port`
    (registry grpc, registry http, serving grpc, ...), then `SERVICE.KIND=PORT` overrides."""
    plan: dict[str, dict[str, int]] = {}
    for index, service in enumerate(SERVICES):
        if base_port is None:
            plan[service] = default_ports(service)
        else:
            plan[service] = {kind: base_port + 2 * index + k for k, kind in enumerate(PORT_KINDS)}
    for override in overrides:
        target, _, value = override.partition("=")
        service, _, kind = target.partition(".")
        if service not in plan or kind not in PORT_KINDS or not value.isdigit() or not 0 < int(value) < 65536:
            raise StackError(f"--port {override!r}: expected SERVICE.KIND=PORT, e.g. registry.grpc=50051")
        plan[service][kind] = int(value)
    return plan


def signing_keys(data_dir: Path) -> dict[str, str]:
    """The public key (hex) of each signer's event key, which lives in that service's data dir, where the service
    finds it by default; created (owner-only) on first use, so the stack can tell the others to trust it."""
    from modelyard.events.signing import EVENT_KEY_FILE, load_private_key, public_key_hex  # every command loads us

    return {signer: public_key_hex(load_private_key(None, data_dir / signer / EVENT_KEY_FILE)) for signer in SIGNERS}


def trusted_keys(data_dir: Path) -> TrustedKeys:
    """Trust in every signer of the stack, as a tool that reads decisions and incidents needs it."""
    from modelyard.events.signing import TrustedKeys, parse_public_key

    return TrustedKeys({signer: [parse_public_key(key)] for signer, key in signing_keys(data_dir).items()})


def trust_env(service: str, data_dir: Path) -> dict[str, str]:
    """`<prefix>TRUSTED_<SIGNER>_KEYS` for each signer whose keys the service's settings ask for."""
    fields = settings_class(service).model_fields
    return {
        f"{env_prefix(service)}TRUSTED_{signer.upper()}_KEYS": json.dumps([key])
        for signer, key in signing_keys(data_dir).items()
        if f"trusted_{signer}_keys" in fields
    }


class ServiceRecord(BaseModel):
    grpc: str  # host:port
    http: str  # base URL
    pid: int
    log: Path
    workers: int = 1  # worker processes of the service (serving's `workers`), each a replica of its own
    restarts: int = 0  # by `modelyard up`, after the process exited on its own
    last_exit: int | None = None  # of the last exit that caused a restart (negative: killed by that signal)


class BrokerRecord(BaseModel):
    bootstrap: str
    embedded: bool
    log: Path | None = None
    pid: int | None = None  # of the embedded broker
    restarts: int = 0
    last_exit: int | None = None


class TlsRecord(BaseModel):
    """What a client of a stack started with `--tls` needs: the stack's CA and a client certificate it accepts."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def client(self) -> ClientTls:
        return ClientTls(self.ca_file, self.cert_file, self.key_file)


class StackState(BaseModel):
    pid: int  # of `modelyard up`
    data_dir: Path
    broker: BrokerRecord
    services: dict[str, ServiceRecord]
    tls: TlsRecord | None = None  # None: plaintext

    @property
    def client_tls(self) -> ClientTls | None:
        return self.tls.client if self.tls else None

    def save(self) -> None:
        path = self.data_dir / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(self.model_dump_json(indent=2))
        temporary.replace(path)  # atomic: `status` never reads half a file

    @classmethod
    def load(cls, data_dir: Path) -> StackState | None:
        path = data_dir / STATE_FILE
        if not path.exists():
            return None
        return cls.model_validate_json(path.read_text())

    def owner_alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def parse_env_options(values: tuple[str, ...] | list[str]) -> dict[str, dict[str, str]]:
    """`SERVICE.KEY=VALUE` options as {service: {MODELYARD_<SERVICE>_KEY: VALUE}}.

    The key is given without the prefix and upper-cased here, so an option cannot set another service's variables
    (or anything else in the environment) by accident.
    """
    parsed: dict[str, dict[str, str]] = {}
    for value in values:
        target, sep, setting = value.partition("=")
        service, _, key = target.partition(".")
        if not sep or service not in SERVICES or not key.replace("_", "").isalnum():
            raise StackError(f"--env {value!r}: expected SERVICE.KEY=VALUE, e.g. monitor.window_max_events=200")
        parsed.setdefault(service, {})[f"{env_prefix(service)}{key.upper()}"] = setting
    return parsed


def service_env(
    service: str, host: str, plan: dict[str, dict[str, int]], data_dir: Path, bootstrap: str, *, idempotence: bool
) -> dict[str, str]:
    prefix = env_prefix(service)
    service_dir = data_dir / service
    service_dir.mkdir(parents=True, exist_ok=True)
    env = {
        f"{prefix}HOST": host,
        f"{prefix}GRPC_PORT": str(plan[service]["grpc"]),
        f"{prefix}HTTP_PORT": str(plan[service]["http"]),
        f"{prefix}DATA_DIR": str(service_dir),
        f"{prefix}KAFKA_BOOTSTRAP": bootstrap,
        f"{prefix}KAFKA_IDEMPOTENCE": str(idempotence).lower(),
    }
    # A service that calls another (a `<peer>_address` setting: governance and serving call the registry, serving
    # calls governance) must find it where this stack put it, not at its default port, which another stack on this
    # machine may own.
    fields = settings_class(service).model_fields
    for peer in SERVICES:
        if peer != service and f"{peer}_address" in fields:
            env[f"{prefix}{peer.upper()}_ADDRESS"] = format_address(client_host(host), plan[peer]["grpc"])
    # In a stack, governance decides what serving serves, also after a restart, and serving fetches what it decides
    # from this stack's registry; the plan file and the model directory are for standalone use.
    if "plan_source" in fields and "governance_address" in fields:
        env[f"{prefix}PLAN_SOURCE"] = "governance"
    if "artifact_source" in fields and "registry_address" in fields:
        env[f"{prefix}ARTIFACT_SOURCE"] = "registry"
    # Likewise the monitor profiles each version's reference dataset as registered in this stack's registry.
    if "reference_source" in fields and "registry_address" in fields:
        env[f"{prefix}REFERENCE_SOURCE"] = "registry"
    # Serving's worker count, stated (its default, the usable cores): the stack shows it, and whoever waits for a
    # model to be loaded everywhere waits for every worker.
    if "workers" in fields:
        env[f"{prefix}WORKERS"] = str(fields["workers"].get_default(call_default_factory=True))
    return env


def worker_count(service: str, env: dict[str, str]) -> int:
    """How many worker processes `service` runs with `env` (1 for a service without workers)."""
    return int(env.get(f"{env_prefix(service)}WORKERS", "1"))


def stack_pki(directory: Path, host: str) -> LocalPki:
    """The stack's CA and certificates: one server certificate for every service (they share this host), one client
    certificate that the services and the CLI present."""
    from modelyard.certificates import LOCAL_HOSTS, LocalPki  # cryptography: only `up --tls` needs it

    try:
        return LocalPki.ensure(directory.resolve(), dict.fromkeys([*LOCAL_HOSTS, client_host(host)]))
    except ValueError as exc:
        raise StackError(f"--tls-dir: {exc}") from None


def tls_env(service: str, pki: LocalPki | None) -> dict[str, str]:
    """Server TLS asking callers for a certificate of the stack's CA; clients of the other services trusting that
    CA and presenting the stack's client certificate."""
    if pki is None:
        return {}
    prefix = env_prefix(service)
    files = {
        "CERT_FILE": pki.server.cert_file,
        "KEY_FILE": pki.server.key_file,
        "CLIENT_CA_FILE": pki.ca_file,
        "CA_FILE": pki.ca_file,
        "CLIENT_CERT_FILE": pki.client.cert_file,
        "CLIENT_KEY_FILE": pki.client.key_file,
    }
    return {f"{prefix}TLS__{name}": str(path) for name, path in files.items()}
