"""Signed events: what a signature covers, who is trusted, key files, and the settings that refuse to run unsigned."""

from __future__ import annotations

import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr, ValidationError

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.events import headers as h
from modelyard.events.envelope import Event, Headers, encode
from modelyard.events.signing import (
    EventSigner,
    SignatureError,
    TrustedKeys,
    key_id,
    load_private_key,
    public_key_hex,
)
from modelyard.events.topics import GOVERNANCE_DECISIONS
from modelyard.governance.config import GovernanceSettings
from modelyard.monitor.config import MonitorSettings
from modelyard.serving.config import ServingSettings

pytestmark = pytest.mark.unit
TOPIC = GOVERNANCE_DECISIONS.name
Record = tuple[str, bytes, bytes, Headers]


def signed_record(key: Ed25519PrivateKey) -> Record:
    plan = common_pb2.DeploymentPlan(model_name="m", revision=2)
    event = Event.new("m", gov.DeploymentApproved(request_id="r", plan=plan), "governance")
    record_key, value, headers = encode(event)
    return TOPIC, record_key, value, EventSigner(key).sign(TOPIC, record_key, value, headers)


def replace_header(name: str, value: bytes) -> Callable[[Record], Record]:
    def mutate(record: Record) -> Record:
        topic, key, payload, headers = record
        return topic, key, payload, [(k, value if k == name else v) for k, v in headers]

    return mutate


def test_a_signed_event_verifies_and_names_its_key() -> None:
    key = Ed25519PrivateKey.generate()
    assert TrustedKeys({"governance": [key.public_key()]}).verify("governance", *signed_record(key)) == key_id(
        key.public_key()
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: ("modelyard.other.topic", *r[1:]),
        lambda r: (r[0], b"another-model", r[2], r[3]),
        lambda r: (r[0], r[1], r[2] + b"\x10\x01", r[3]),
        lambda r: (r[0], r[1], r[2][:-3], r[3]),
        replace_header(h.ID, b"another-id"),
        replace_header(h.TYPE, b"modelyard.events.v1.RollbackOrdered"),
        replace_header(h.SOURCE, b"monitor"),
        replace_header(h.TIME, b"2020-01-01T00:00:00+00:00"),
        replace_header(h.SIGNATURE, b"00" * 64),
        replace_header(h.SIGNATURE, b"not hex"),
    ],
    ids=[
        "topic",
        "key",
        "payload",
        "truncated payload",
        "id",
        "type",
        "source",
        "time",
        "signature",
        "garbled signature",
    ],
)
def test_changing_anything_a_signature_covers_breaks_it(tamper: Callable[[Record], Record]) -> None:
    key = Ed25519PrivateKey.generate()
    trusted = TrustedKeys({"governance": [key.public_key()]})
    with pytest.raises(SignatureError, match="invalid signature by key"):
        trusted.verify("governance", *tamper(signed_record(key)))


def test_unsigned_and_untrusted_events_are_refused_with_the_reason() -> None:
    trusted_key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = TrustedKeys({"governance": [trusted_key.public_key()]})
    topic, key, value, headers = signed_record(trusted_key)
    unsigned = [(k, v) for k, v in headers if k not in (h.SIGNATURE, h.SIGNING_KEY_ID)]
    with pytest.raises(SignatureError, match=r"unsigned event on modelyard\.governance\.decisions"):
        trusted.verify("governance", topic, key, value, unsigned)
    with pytest.raises(SignatureError, match=f"signed by key '{key_id(stranger.public_key())}', not a trusted key"):
        trusted.verify("governance", *signed_record(stranger))
    # Trust is per producer: the monitor's key does not sign decisions, nor governance's incidents.
    with pytest.raises(SignatureError, match=r"not a trusted key of monitor \(none configured\)"):
        trusted.verify("monitor", *signed_record(trusted_key))


def test_during_a_rotation_both_keys_are_trusted_by_id() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = TrustedKeys.of("governance", [public_key_hex(old)], new.public_key())
    assert trusted.verify("governance", *signed_record(old)) == key_id(old.public_key())
    assert trusted.verify("governance", *signed_record(new)) == key_id(new.public_key())
    merged = trusted.merged(TrustedKeys.of("monitor", [public_key_hex(old)]))
    assert merged.verify("monitor", *signed_record(old)) == key_id(old.public_key())


def test_a_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "event-signing.key"
    first = load_private_key(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_hex(load_private_key(None, path)) == public_key_hex(first)
    configured = Ed25519PrivateKey.generate()
    chosen = load_private_key(SecretStr(configured.private_bytes_raw().hex()), path)
    assert public_key_hex(chosen) == public_key_hex(configured)
    with pytest.raises(ValueError, match="must be 64 hex characters"):
        load_private_key(SecretStr("short"), path)


def test_a_trusted_key_that_is_not_a_key_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="an Ed25519 public key is 64 hex characters"):
        ServingSettings(trusted_governance_keys=["abc"])


def test_production_refuses_to_consume_or_produce_signed_events_without_keys() -> None:
    auth = {"allow_anonymous": False, "tokens": {secrets.token_urlsafe(32): {"principal": "ci", "roles": ["admin"]}}}
    tls = {"terminated_by_proxy": True}
    production: dict[str, Any] = {"profile": "production", "host": "0.0.0.0", "auth": auth, "tls": tls}
    with pytest.raises(ValidationError, match="no trusted governance keys"):
        ServingSettings(**production)
    with pytest.raises(ValidationError, match="no event signing key"):
        MonitorSettings(**production)
    with pytest.raises(ValidationError) as refused:
        GovernanceSettings(**production)
    assert "no event signing key" in str(refused.value) and "no trusted monitor keys" in str(refused.value)
    ServingSettings(**production, trusted_governance_keys=[public_key_hex(Ed25519PrivateKey.generate())])
