"""The dashboard's WebSocket: events from workers and periodic overview snapshots.

Staff with ``rabbitbus.view_dashboard`` only; anyone else is refused before the
handshake completes. Each socket has its own exclusive, auto-delete,
server-named queue bound to the events exchange, gone when the socket closes.
Include :data:`websocket_urlpatterns` in the project's ASGI router, inside
``AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(...)))``.

Messages sent to the page (JSON):
``{"type": "overview", "data": <monitoring.as_json>}`` every ``interval`` seconds and
``{"type": "event", "kind": <routing key>, "data": <event payload>}`` per event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aio_pika
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.urls import path

from rabbitbus import connections, monitoring
from rabbitbus.exceptions import RabbitBusError

logger = logging.getLogger("rabbitbus.live")

REFUSED = 4403


@database_sync_to_async
def _may_watch(user: Any) -> bool:
    return bool(
        user and user.is_active and user.is_staff and user.has_perm("rabbitbus.view_dashboard")
    )


@database_sync_to_async
def _snapshot(alias: str) -> dict[str, Any]:
    return monitoring.as_json(monitoring.overview(alias))


class DashboardConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Pushes overview snapshots and monitoring events to one dashboard page."""

    alias = "default"
    interval = 2.0

    async def connect(self) -> None:
        self.ticker: asyncio.Task[None] | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        if not await _may_watch(self.scope.get("user")):
            await self.close(code=REFUSED)
            return
        await self.accept()
        try:
            await self._subscribe()
        except (RabbitBusError, aio_pika.exceptions.AMQPError, OSError) as exc:
            # Snapshots still flow (they report the broker as unreachable).
            logger.warning("Live events unavailable: %s", type(exc).__name__)
        # Started after subscribing: the first snapshot means events are flowing.
        self.ticker = asyncio.create_task(self._tick())

    async def _subscribe(self) -> None:
        connection = await connections.get_async(self.alias).get()
        self.channel = channel = await connection.channel()
        exchange = await channel.declare_exchange(
            monitoring.events_exchange(), aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange, "#")
        await queue.consume(self._on_event, no_ack=True)

    async def _on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            data = json.loads(message.body)
        except ValueError:
            data = {"undecodable": True}
        await self.send_json({"type": "event", "kind": message.routing_key, "data": data})

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
        if self.channel is not None and not self.channel.is_closed:
            await self.channel.close()  # the exclusive queue goes with it


websocket_urlpatterns = [
    path("ws/rabbitbus/dashboard/", DashboardConsumer.as_asgi()),
]
