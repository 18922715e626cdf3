"""The local stack that `modelyard up` runs and `modelyard status` inspects: which services, on which ports,
and the state file (`<data-dir>/up.json`) that connects the two commands."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from modelyard.settings import ServiceSettings
from modelyard.tls import ClientTls

if TYPE_CHECKING:
    from modelyard.events.signing import TrustedKeys

SERVICES = ("registry", "serving", "monitor", "governance")
SIGNERS = ("governance", "monitor")  # the producers of signed events (decisions, incidents)
PORT_KINDS = ("grpc", "http")
STATE_FILE = "up.json"
DEFAULT_DATA_DIR = Path(".modelyard")


class StackError(Exception):
    """A problem the user can fix (port taken, bad option); printed without a traceback."""


def settings_class(service: str) -> type[ServiceSettings]:
    """`modelyard.<service>.config.<Service>Settings`: the source of the service's env prefix and default ports.

    Imported by name because the core member does not depend on the services; the `modelyard` package does.
    """
    module = importlib.import_module(f"modelyard.{service}.config")
    cls: type[ServiceSettings] = getattr(module, f"{service.capitalize()}Settings")
    return cls


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


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_host(host: str) -> str:
    """Where a local client connects to a server bound to `host` (a wildcard bind answers on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


class ServiceRecord(BaseModel):
    grpc: str  # host:port
    http: str  # base URL
    pid: int
    log: Path
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
