"""Signed events: the producer of an event that changes what is served signs it, its consumers verify it.

A signature is Ed25519 over the record as a consumer acts on it: the topic, the key, the CloudEvents id, type,
source and time, and the payload bytes exactly as sent (length-prefixed, so no field can bleed into the next).
It travels in two headers: the signing key's id (a fingerprint of its public key) and the signature. Consumers
trust public keys per producer, several at once (key rotation), each found by its id.

Which topics must be signed, and by whom, is in the topic catalogue (`Topic.signed`, `Topic.sources`); the
consumer refuses an unsigned or badly signed event on such a topic before any handler sees it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AfterValidator, SecretStr

from modelyard.events import headers as h
from modelyard.events.envelope import EnvelopeError, Headers

EVENT_KEY_FILE = "event-signing.key"  # the local profile's key, in the service's data dir
_CONTEXT = b"modelyard-event-signature-v1"


class SignatureError(EnvelopeError):
    """An event on a signed topic that is unsigned, signed by a key nobody trusts, or whose signature is wrong."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint that names a key (several are trusted at once while keys rotate)."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:16]


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw().hex()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its 64 hex characters; raises ValueError."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
    except ValueError:
        raise ValueError("an Ed25519 public key is 64 hex characters") from None


def _checked_public_key(text: str) -> str:
    parse_public_key(text)
    return text.strip()


PublicKeyHex = Annotated[str, AfterValidator(_checked_public_key)]
"""A settings field type: a public key in hex, refused at startup when it is not one."""


def load_private_key(configured: SecretStr | None, default_file: Path) -> Ed25519PrivateKey:
    """The configured key (its 32-byte seed in hex), else the one in `default_file`, created (0600) on first use.
    Raises ValueError for a seed that is not an Ed25519 seed."""
    if configured is not None:
        seed = configured.get_secret_value()
    else:
        if not default_file.exists():
            default_file.parent.mkdir(parents=True, exist_ok=True)
            # Owner-only from the start: the file never exists with wider permissions.
            fd = os.open(default_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(Ed25519PrivateKey.generate().private_bytes_raw().hex())
        seed = default_file.read_text()
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed.strip()))
    except ValueError:
        raise ValueError(f"the signing key ({default_file.name}) must be 64 hex characters (an Ed25519 seed)") from None


def signed_message(topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> bytes:
    """The bytes a signature covers."""
    attrs = dict(headers)
    attributes = [attrs.get(name) or b"" for name in (h.ID, h.TYPE, h.SOURCE, h.TIME)]
    parts = [_CONTEXT, topic.encode(), key or b"", *attributes, value or b""]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


class EventSigner:
    """Signs the records its producer sends on signed topics."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = key_id(key.public_key())

    def sign(self, topic: str, key: bytes, value: bytes, headers: Headers) -> Headers:
        """`headers` with the key id and the signature added."""
        signature = self._key.sign(signed_message(topic, key, value, headers))
        return [*headers, (h.SIGNING_KEY_ID, self.key_id.encode()), (h.SIGNATURE, signature.hex().encode())]


class TrustedKeys:
    """The public keys a consumer trusts, per producer (the catalogue's `Topic.sources`), by key id."""

    def __init__(self, keys: Mapping[str, Iterable[Ed25519PublicKey]] | None = None) -> None:
        self._keys: dict[str, dict[str, Ed25519PublicKey]] = {}
        for producer, public_keys in (keys or {}).items():
            self._keys[producer] = {key_id(k): k for k in public_keys}

    @classmethod
    def of(cls, producer: str, hex_keys: Iterable[str], *extra: Ed25519PublicKey) -> TrustedKeys:
        return cls({producer: [*(parse_public_key(k) for k in hex_keys), *extra]})

    def merged(self, other: TrustedKeys) -> TrustedKeys:
        merged = TrustedKeys()
        for source in (self, other):
            for producer, keys in source._keys.items():
                merged._keys.setdefault(producer, {}).update(keys)
        return merged

    def verify(
        self, producer: str, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> str:
        """The id of the trusted key of `producer` that signed the record; raises SignatureError."""
        attrs = dict(headers)
        signing_key_id = attrs.get(h.SIGNING_KEY_ID)
        signature = attrs.get(h.SIGNATURE)
        if signing_key_id is None or signature is None:
            raise SignatureError(f"unsigned event on {topic}, which only carries events signed by {producer}")
        kid = signing_key_id.decode("ascii", errors="replace")[:64]
        trusted = self._keys.get(producer, {})
        public_key = trusted.get(kid)
        if public_key is None:
            known = ", ".join(sorted(trusted)) or "none configured"
            raise SignatureError(f"signed by key {kid!r}, not a trusted key of {producer} ({known})")
        try:
            public_key.verify(bytes.fromhex(signature.decode("ascii")), signed_message(topic, key, value, headers))
        except (InvalidSignature, ValueError):
            raise SignatureError(f"invalid signature by key {kid} of {producer}") from None
        return kid
