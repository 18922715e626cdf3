"""Binding listening ports with an error that names the port, instead of a bind traceback."""

from __future__ import annotations

import errno
import socket

from modelyard.kafka.embedded import port_is_free


class StartupError(RuntimeError):
    """The service cannot start; the message says why and is meant for a person, without a traceback."""


class PortInUseError(StartupError):
    def __init__(self, what: str, host: str, port: int) -> None:
        super().__init__(f"{what} port {port} on {host} is already in use")
        self.what = what
        self.host = host
        self.port = port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_host(host: str) -> str:
    """Where a local client connects to a server bound to `host` (a wildcard bind answers on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def check_port_free(what: str, host: str, port: int) -> None:
    """Raise `PortInUseError` when `port` is taken; port 0 (any free port) always passes."""
    if port and not port_is_free(host, port):
        raise PortInUseError(what, host, port)


def bind_listener(what: str, host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A bound TCP socket for `host:port` (not yet listening); raises `PortInUseError` on a clash. `shared`
    (SO_REUSEPORT): the worker processes of one service each bind the port and the kernel spreads connections
    over them; a process that does not share it still gets a clash."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    # SO_REUSEADDR lets a restart bind while old connections sit in TIME_WAIT; it never shares a live listener.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(what, host, port) from None
        raise StartupError(f"cannot bind {what} port {port} on {host}: {exc.strerror}") from None
    return sock


def reserve_port(what: str, host: str, port: int) -> socket.socket:
    """Hold `host:port` (a free one for port 0) for the worker processes that will share it: fails with
    `PortInUseError` when anyone holds it, then keeps a bound, never listening, SO_REUSEPORT socket, which takes no
    connections but keeps other programs off the port while workers restart."""
    check_port_free(what, host, port)
    return bind_listener(what, host, port, shared=True)
