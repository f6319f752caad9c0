"""A small client for RabbitMQ's management HTTP API (stdlib ``urllib`` only).

Configured by the optional ``RABBITBUS["MANAGEMENT"]`` setting:
``{"URL": "http://127.0.0.1:15672", "USER": "guest", "PASSWORD": "...", "TIMEOUT": 3}``.
The password never appears in a repr, a log line or an error message.
See https://www.rabbitmq.com/docs/management#http-api
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rabbitbus.exceptions import ManagementApiError

logger = logging.getLogger("rabbitbus.mgmt")

DEFAULT_TIMEOUT = 3.0
QUEUE_COLUMNS = "name,messages_ready,messages_unacknowledged,consumers,message_stats"


@dataclass(frozen=True)
class ManagementApi:
    """The management API of one node, as one user."""

    url: str
    user: str = "guest"
    password: str = field(default="guest", repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def get(self, path: str) -> Any:
        """GET ``/api/<path>`` and return the decoded JSON; raises ManagementApiError."""
        return self._request("GET", path)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        """POST JSON to ``/api/<path>`` and return the decoded JSON reply."""
        return self._request("POST", path, data)

    def _request(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL comes from settings
            f"{self.url.rstrip('/')}/api/{path}", data=body, method=method
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ManagementApiError(f"{method} /api/{path}: HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise ManagementApiError(f"{method} /api/{path}: {type(exc).__name__}") from exc

    def overview(self) -> dict[str, Any]:
        return dict(self.get("overview"))

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Queue name -> the API's queue object, for every queue in ``vhost``."""
        rows = self.get(f"queues/{quote(vhost, safe='')}?columns={QUEUE_COLUMNS}")
        return {row["name"]: row for row in rows}

    def peek(self, vhost: str, queue: str, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` messages from the head of ``queue``, requeued after reading."""
        path = f"queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get"
        options = {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"}
        return list(self.post(path, {**options, "truncate": 50000}))


def configured() -> ManagementApi | None:
    """The API from ``RABBITBUS["MANAGEMENT"]``, or None when it is not configured."""
    from rabbitbus.conf import settings

    raw = settings.MANAGEMENT
    if not raw:
        return None
    return ManagementApi(
        url=raw["URL"],
        user=raw.get("USER", "guest"),
        password=raw.get("PASSWORD", "guest"),
        timeout=float(raw.get("TIMEOUT", DEFAULT_TIMEOUT)),
    )
