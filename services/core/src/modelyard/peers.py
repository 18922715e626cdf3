"""A service's gRPC client of another service: where it dials (address, TLS), as whom (a bearer token) and how long
a call may take; and which answers mean "ask again later"."""

from __future__ import annotations

import grpc

from modelyard.tls import ClientTls

# Statuses after which asking again later may succeed; anything else is the peer's final answer.
TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, grpc.StatusCode.UNKNOWN}
)


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that presents `token` (none without one)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class PeerClient:
    """The dialling half of a client of another service; the subclass makes its channel and stub."""

    def __init__(
        self, address: str, token: str | None = None, timeout_s: float = 300.0, tls: ClientTls | None = None
    ) -> None:
        self.address = address
        self.tls = tls
        self.timeout_s = timeout_s
        self._metadata = bearer(token)
