"""WebSockets fed by RabbitMQ: a reusable stream consumer, and the admin dashboard's.

:class:`MessageStreamConsumer` forwards the messages of an exchange to one
browser: each socket gets its own exclusive, auto-delete, server-named queue,
bound with the keys the socket asks for, gone when the socket closes.
Subclass it for a page of your own (the demo shop's order page does).

:class:`DashboardConsumer` is the admin dashboard's: staff with
``rabbitbus.view_dashboard`` only (anyone else is refused before the handshake
completes). It sends ``{"type": "overview", "data": <monitoring.as_json>}``
every ``interval`` seconds and ``{"type": "event", "kind": <routing key>,
"data": <event payload>}`` per monitoring event. Include
:data:`websocket_urlpatterns` in the project's ASGI router, inside
``AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(...)))``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.urls import path

from rabbitbus import monitoring
from rabbitbus.messages import Delivery
from rabbitbus.transport import streams

logger = logging.getLogger("rabbitbus.live")

REFUSED = 4403


class MessageStreamConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Forwards messages from ``exchange`` (bound with :meth:`binding_keys`) to a WebSocket.

    Secure by default: :meth:`authorize` lets in active staff only, so a
    subclass says who may listen. Override it (a stream for everyone says so in
    one line: ``async def authorize(self): return True``), :meth:`binding_keys`
    and :meth:`forward`; :meth:`subscribed` runs once messages are flowing, so a
    snapshot sent there misses nothing. The exchange must exist (declared by
    ``rabbit_setup``) unless ``declare_exchange`` is set, which declares it as a durable
    topic exchange.
    """

    alias = "default"
    exchange = ""
    declare_exchange = False

    async def connect(self) -> None:
        self.stream: streams.Stream | None = None
        if not await self.authorize():
            await self.close(code=REFUSED)
            return
        await self.accept()
        try:
            await self._subscribe()
        except streams.ERRORS as exc:
            logger.warning("Live messages unavailable: %s", type(exc).__name__)
            await self.unavailable(exc)
        await self.subscribed()

    async def authorize(self) -> bool:
        """Whether this socket may listen (checked before the handshake completes;
        refused with close code 4403). Default: active staff only."""
        user = self.scope.get("user")
        return bool(user is not None and user.is_active and user.is_staff)

    def binding_keys(self) -> Sequence[str]:
        return ["#"]

    async def subscribed(self) -> None:
        """Called after subscribing (or failing to): send a snapshot here."""

    async def unavailable(self, error: BaseException) -> None:
        """Called when the broker could not be subscribed to."""

    async def forward(self, routing_key: str, data: Any) -> None:
        await self.send_json({"type": "message", "kind": routing_key, "data": data})

    async def _subscribe(self) -> None:
        self.stream = await streams.Stream.open(
            self.alias,
            self.exchange,
            self.binding_keys(),
            self._on_message,
            declare_topic=self.declare_exchange,
        )

    async def _on_message(self, delivery: Delivery) -> None:
        try:
            data = json.loads(delivery.body)
        except ValueError:
            data = {"undecodable": True}
        await self.forward(delivery.routing_key, data)

    async def disconnect(self, code: int) -> None:
        if self.stream is not None:
            await self.stream.close()  # the exclusive queue goes with it


@database_sync_to_async  # type: ignore[untyped-decorator]
def _may_watch(user: Any) -> bool:
    return bool(
        user and user.is_active and user.is_staff and user.has_perm("rabbitbus.view_dashboard")
    )


@database_sync_to_async  # type: ignore[untyped-decorator]
def _snapshot(alias: str) -> dict[str, Any]:
    return monitoring.as_json(monitoring.overview(alias))


class DashboardConsumer(MessageStreamConsumer):
    """Pushes overview snapshots and monitoring events to one dashboard page."""

    interval = 2.0
    declare_exchange = True

    async def connect(self) -> None:
        self.ticker: asyncio.Task[None] | None = None
        self.exchange = monitoring.events_exchange()  # a setting, so read per socket
        await super().connect()

    async def authorize(self) -> bool:
        return bool(await _may_watch(self.scope.get("user")))

    async def subscribed(self) -> None:
        # Snapshots flow even without events (they report the broker as unreachable).
        self.ticker = asyncio.create_task(self._tick())

    async def forward(self, routing_key: str, data: Any) -> None:
        await self.send_json({"type": "event", "kind": routing_key, "data": data})

    async def _tick(self) -> None:
        while True:
            try:
                await self.send_json({"type": "overview", "data": await _snapshot(self.alias)})
            except Exception:  # a bad tick (e.g. the database is down) must not end the feed
                logger.exception("Dashboard snapshot failed")
            await asyncio.sleep(self.interval)

    async def disconnect(self, code: int) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        await super().disconnect(code)


websocket_urlpatterns = [
    path("ws/rabbitbus/dashboard/", DashboardConsumer.as_asgi()),
]
