"""The one mapping of a service's errors to gRPC and HTTP status codes, shared by its gRPC and REST transports,
and the one way an error becomes the message a client reads.

Each service declares its domain errors' codes; the access errors of `modelyard.auth` and the input errors of
`modelyard.inputs` are added here, so every service answers a bad token, a missing role or an out-of-range time
the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import grpc

from modelyard.auth import AuthError
from modelyard.inputs import BadInput
from modelyard.runtime import auth_grpc, auth_http

Codes = tuple[grpc.StatusCode, int]
UNEXPECTED: Codes = (grpc.StatusCode.INTERNAL, 500)
# A status message travels in gRPC trailers (8 KiB by default on the client) and in JSON bodies: long enough to
# say what is wrong, short enough never to echo a whole input (a 1 MB name) back.
MAX_MESSAGE_CHARS = 300
# Absolute file system paths (two segments or more): where the server keeps its files is none of the caller's business.
_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+~-]+/)+[\w.@+~-]*")


def client_message(error: BaseException | str) -> str:
    """The text of an error as a client may read it: server paths replaced, cut to `MAX_MESSAGE_CHARS`."""
    text = _SERVER_PATH.sub("<path>", str(error))
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


class ErrorStatus:
    def __init__(self, domain_error: type[Exception], codes: Mapping[type[Exception], Codes]) -> None:
        self.known: tuple[type[Exception], ...] = (domain_error, AuthError, BadInput)
        self._codes: dict[type[Exception], Codes] = {
            BadInput: (grpc.StatusCode.INVALID_ARGUMENT, 400),
            **codes,
            **{kind: (code, auth_http.STATUS[kind]) for kind, code in auth_grpc.STATUS.items()},
        }

    def of(self, error: Exception) -> Codes:
        """gRPC and HTTP status of an error: its nearest mapped class, INTERNAL / 500 for anything unexpected."""
        for kind in type(error).__mro__:
            if kind in self._codes:
                return self._codes[kind]
        return UNEXPECTED

    def grpc(self, error: Exception) -> grpc.StatusCode:
        return self.of(error)[0]

    def http(self, error: Exception) -> int:
        return self.of(error)[1]
