"""Which handler an event goes to, by its payload type: what a consumer's `register` and `register_batch` build."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, cast, overload

from google.protobuf.message import Message

from modelyard.events.envelope import EnvelopeError, Event
from modelyard.kafka.handling import BatchHandler

Handler = Callable[[Event], Awaitable[None]]
BlockingHandler = Callable[[Event], None]


@dataclass(frozen=True)
class Route:
    call: Handler | None
    idempotent: bool = False
    batch: BatchHandler | None = None


class Routes:
    """Handlers by payload type (a consumer is one)."""

    def __init__(self) -> None:
        self._routes: dict[type[Message], Route] = {}

    @overload
    def register(
        self,
        payload: type[Message],
        handler: Handler,
        *,
        idempotent: bool = False,
        cpu_bound: Literal[False] = False,
    ) -> None: ...

    @overload
    def register(
        self, payload: type[Message], handler: BlockingHandler, *, idempotent: bool = False, cpu_bound: Literal[True]
    ) -> None: ...

    def register(
        self,
        payload: type[Message],
        handler: Handler | BlockingHandler,
        *,
        idempotent: bool = False,
        cpu_bound: bool = False,
    ) -> None:
        """Route events whose payload is `payload` to `handler`.

        `idempotent=True`: an event id this consumer (or `seen_events`) already handled is skipped.
        `cpu_bound=True`: `handler` is a plain function run in a worker thread, so heartbeats keep flowing.
        """
        call = cast(Handler, handler)
        if cpu_bound:
            if inspect.iscoroutinefunction(handler):
                # In a thread it would only create a coroutine, never run it.
                raise TypeError("a cpu_bound handler is a plain function, not a coroutine function")
            blocking = cast(BlockingHandler, handler)

            async def call_in_thread(event: Event) -> None:
                await asyncio.to_thread(blocking, event)  # copies contextvars: the handler sees our span

            call = call_in_thread
        self._add_route(payload, Route(call, idempotent))

    def register_batch(self, payload: type[Message], handler: BatchHandler) -> None:
        """Route events whose payload is `payload` to `handler`, a plain function run in a worker thread, in
        batches: the consecutive such events of one partition in one fetch (see `modelyard.kafka.consumer`)."""
        self._add_route(payload, Route(None, batch=handler))

    def _add_route(self, payload: type[Message], route: Route) -> None:
        if payload in self._routes:
            raise ValueError(f"a handler for {payload.DESCRIPTOR.full_name} is already registered")
        self._routes[payload] = route

    def _batch_route(self, decoded: Event | EnvelopeError) -> Route | None:
        route = self._routes.get(type(decoded.payload)) if isinstance(decoded, Event) else None
        return route if route is not None and route.batch is not None else None
