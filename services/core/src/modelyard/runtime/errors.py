"""The one mapping of error kinds to gRPC and HTTP status codes, shared by every service's gRPC and REST
transports, and the one way an error becomes the message a client reads.

Every error a caller may be told about is a `KindedError` (the services' domain errors, the access errors of
`modelyard.auth`, the input errors of `modelyard.inputs`); its kind is its gRPC status, and `HTTP_STATUS` gives the
HTTP code, so every service answers a bad token, a missing role or an out-of-range time the same way. A service
overrides an HTTP code only where its meaning differs (`ErrorEdge(http_overrides=...)`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

import grpc

from modelyard.errors import ErrorKind, KindedError

Codes = tuple[grpc.StatusCode, int]
HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.OK: 200,
    ErrorKind.CANCELLED: 499,  # the client closed the request (nginx's code; no standard one exists)
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.ALREADY_EXISTS: 409,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.RESOURCE_EXHAUSTED: 413,  # every RESOURCE_EXHAUSTED we raise is a request over a size limit
    ErrorKind.FAILED_PRECONDITION: 409,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
    # The bytes received do not match what the client declared (or what was stored): unprocessable.
    ErrorKind.DATA_LOSS: 422,
    ErrorKind.UNAUTHENTICATED: 401,
}
# A status message travels in gRPC trailers (8 KiB by default on the client) and in JSON bodies: long enough to
# say what is wrong, short enough never to echo a whole input (a 1 MB name) back.
MAX_MESSAGE_CHARS = 300
# Absolute file system paths (two segments or more): where the server keeps its files is none of the caller's business.
_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+~-]+/)+[\w.@+~-]*")


def client_message(error: BaseException | str) -> str:
    """The text of an error as a client may read it: server paths replaced, cut to `MAX_MESSAGE_CHARS`."""
    text = _SERVER_PATH.sub("<path>", str(error))
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def kind_of(error: BaseException) -> ErrorKind:
    """The kind of an error: its own for a `KindedError`, INTERNAL for anything unexpected."""
    return error.kind if isinstance(error, KindedError) else ErrorKind.INTERNAL


def grpc_status(kind: ErrorKind) -> grpc.StatusCode:
    """gRPC's status of the same name (the kinds are gRPC's codes)."""
    return grpc.StatusCode[kind.name]


class ErrorEdge:
    """A service's statuses: the shared table, with the HTTP codes the service means differently overridden."""

    known: tuple[type[Exception], ...] = (KindedError,)

    def __init__(self, http_overrides: Mapping[ErrorKind, int] | None = None) -> None:
        self._http = {**HTTP_STATUS, **(http_overrides or {})}

    def of(self, error: BaseException) -> Codes:
        """gRPC and HTTP status of an error; INTERNAL / 500 for anything that is not a `KindedError`."""
        kind = kind_of(error)
        return grpc_status(kind), self._http[kind]

    def grpc(self, error: BaseException) -> grpc.StatusCode:
        return self.of(error)[0]

    def http(self, error: BaseException) -> int:
        return self.of(error)[1]

    async def abort(self, context: Any, error: BaseException) -> NoReturn:
        """End an RPC (`context` is its grpc.aio.ServicerContext) with the error's status and the client's message."""
        await context.abort(self.grpc(error), client_message(error))
        raise AssertionError("unreachable: abort raises")

    def body(self, error: BaseException) -> dict[str, str]:
        """The JSON body of a REST error: the gRPC status name and the client's message."""
        return {"code": self.grpc(error).name, "message": client_message(error)}


SHARED = ErrorEdge()
