"""The shared edges for bad input: body limits (413 from Content-Length and while streaming), client messages
(cut, no server paths) and out-of-range times."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request

from modelyard.access import OPEN, AccessEdge, Authenticator
from modelyard.auth import AuthSettings
from modelyard.contracts.monitor.v1 import monitor_service_pb2 as pb
from modelyard.inputs import BadInput, time_of
from modelyard.runtime.errors import MAX_MESSAGE_CHARS, client_message
from modelyard.runtime.http_server import build_app
from modelyard.runtime.readiness import Readiness

pytestmark = pytest.mark.unit


def _client() -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/echo", name="echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @router.post("/big/echo", name="big_echo")
    async def big_echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    edge = AccessEdge(Authenticator(AuthSettings()), {"echo": OPEN, "big_echo": OPEN})
    app = build_app("t", Readiness("t", {}), [router], edge, max_body_bytes=100, body_limits={"/big": 1000})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 10):
        yield b"x" * 10


async def test_body_limits_from_content_length_and_while_streaming() -> None:
    async with _client() as client:
        assert (await client.post("/echo", content=b"x" * 100)).json() == {"bytes": 100}
        declared = await client.post("/echo", content=b"x" * 101)
        assert declared.status_code == 413, declared.text
        assert declared.json()["code"] == "RESOURCE_EXHAUSTED"
        streamed = await client.post("/echo", content=_chunks(200))  # chunked: no Content-Length
        assert streamed.status_code == 413, streamed.text
        assert (await client.post("/big/echo", content=b"x" * 1000)).json() == {"bytes": 1000}
        assert (await client.post("/big/echo", content=_chunks(1010))).status_code == 413


def test_client_messages_are_short_and_name_no_server_path() -> None:
    message = client_message(ValueError("cannot read /srv/modelyard/artifacts/staging/upload-1x2: " + "n" * 10**6))
    assert len(message) == MAX_MESSAGE_CHARS
    assert "/srv" not in message and message.startswith("cannot read <path>: nnn")


def test_out_of_range_times_are_bad_input() -> None:
    request = pb.SendFeedbackRequest()
    assert time_of(request, "event_time") is None
    request.event_time.seconds = 2**62
    with pytest.raises(BadInput, match="event_time is not a valid time"):
        time_of(request, "event_time")
    request.event_time.seconds, request.event_time.nanos = 0, -1
    with pytest.raises(BadInput):
        time_of(request, "event_time")
