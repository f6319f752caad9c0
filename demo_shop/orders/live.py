"""The order page's WebSocket: the order's status, then every change as it happens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from channels.db import database_sync_to_async
from django.urls import path

from demo_shop import bus
from demo_shop.billing.tasks import email_invoice
from demo_shop.orders import access, timeline
from demo_shop.orders.models import Order
from rabbitbus.live import MessageStreamConsumer
from rabbitbus.tasks.compat import TaskResultDoesNotExist, TaskResultStatus


def order_state(order: Order) -> dict[str, Any]:
    """What an order page shows (also ``status.json``): status, reason, the history of
    its status, the timeline of its messages (:func:`demo_shop.orders.timeline.entries`)
    and the result of its invoice email task (:func:`invoice_email`)."""
    history = [
        {
            "status": change.status,
            "reason": change.reason,
            "at": change.at.isoformat(),
            "clock": timeline.clock(change.at),
        }
        for change in order.history.all()
    ]
    recorded = list(order.timeline.all())  # read once: what is shown is what was judged
    return {
        "id": order.pk,
        "status": order.status,
        "reason": order.reason,
        "history": history,
        "timeline": timeline.entries(order, recorded),
        "settled": timeline.settled(order, recorded),
        "invoice_email": invoice_email(order),
    }


def invoice_email(order: Order) -> dict[str, Any] | None:
    """The invoice email task's result, read with ``get_result()`` (None before it is
    enqueued): its status, when it finished, and whom it mailed or why it failed."""
    if not order.invoice_task_id:
        return None
    try:
        result = email_invoice.get_result(order.invoice_task_id)
    except TaskResultDoesNotExist:
        # The READY row is committed with the id, so it was pruned (rabbit_tasks --prune).
        detail = "result no longer stored"
        return {"id": order.invoice_task_id, "status": "", "finished": True, "clock": "",
                "finished_at": None, "detail": detail}  # fmt: skip
    finished = result.finished_at
    if result.status == TaskResultStatus.SUCCESSFUL:
        detail = f"sent to {result.return_value['to']}"
    elif result.errors:
        detail = result.errors[-1].exception_class_path
    else:
        detail = ""
    return {
        "id": result.id,
        "status": str(result.status),
        "finished": finished is not None,
        "finished_at": finished.isoformat() if finished else None,
        "clock": timeline.clock(finished) if finished else "",
        "detail": detail,
    }


@database_sync_to_async
def _state(pk: int) -> dict[str, Any] | None:
    order = Order.objects.filter(pk=pk).first()
    return order_state(order) if order else None


class OrderStatusConsumer(MessageStreamConsumer):
    """Sends ``{"type": "order", ...order_state}`` on connect and after each status change.

    Each ``order.status.<id>`` event triggers a fresh read, so the page never
    shows a half-applied change, whatever order events arrive in. Only the
    visitor who may see the order's page may listen (:mod:`demo_shop.orders.access`);
    anyone else, and any id that cannot be one, is refused at the handshake.
    """

    exchange = bus.EXCHANGE

    @property
    def order_id(self) -> int:
        return access.parse_id(self.scope["url_route"]["kwargs"]["pk"]) or 0

    async def authorize(self) -> bool:
        return await database_sync_to_async(access.may_see)(
            self.scope.get("user"),
            self.scope.get("session"),
            self.scope["url_route"]["kwargs"]["pk"],
        )

    def binding_keys(self) -> Sequence[str]:
        return [f"order.status.{self.order_id}"]

    async def subscribed(self) -> None:
        await self._send_state()

    async def forward(self, routing_key: str, data: Any) -> None:
        await self._send_state()

    async def _send_state(self) -> None:
        state = await _state(self.order_id)
        await self.send_json({"type": "order", **(state or {"id": self.order_id, "missing": True})})


websocket_urlpatterns = [
    # <str:pk>: "-1" or "abc" reach the consumer and are refused, not a routing error.
    path("ws/orders/<str:pk>/", OrderStatusConsumer.as_asgi()),
]
