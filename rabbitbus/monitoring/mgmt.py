"""A small client for RabbitMQ's management HTTP API (stdlib ``urllib`` only).

Configured by the optional ``RABBITBUS["MANAGEMENT"]`` setting:
``{"URL": "http://127.0.0.1:15672", "USER": "guest", "PASSWORD": "...", "TIMEOUT": 3}``.
The password never appears in a repr, a log line or an error message.
See https://www.rabbitmq.com/docs/management#http-api
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rabbitbus.conf import ManagementSettings, defaults
from rabbitbus.exceptions import ManagementApiError

#: ``RABBITBUS["MANAGEMENT"]``'s defaults, also those of a :class:`ManagementApi` built in code.
_DEFAULTS = defaults(ManagementSettings)
QUEUE_COLUMNS = "name,messages_ready,messages_unacknowledged,consumers,message_stats"
HISTORY_COLUMNS = "messages_ready_details,messages_unacknowledged_details"
#: Spacing of history samples; the broker keeps 5 s samples for ~10 minutes by default
#: (https://www.rabbitmq.com/docs/management#sample-retention).
SAMPLE_SECONDS = 5


@dataclass(frozen=True)
class ManagementApi:
    """The management API of one node, as one user."""

    url: str
    user: str = _DEFAULTS["USER"]
    password: str = field(default=_DEFAULTS["PASSWORD"], repr=False)
    timeout: float = _DEFAULTS["TIMEOUT"]

    def get(self, path: str) -> Any:
        """GET ``/api/<path>`` and return the decoded JSON; raises ManagementApiError."""
        return self._request("GET", path)

    def put(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """PUT ``body`` (JSON) to ``/api/<path>``; raises ManagementApiError."""
        return self._request("PUT", path, body or {})

    def delete(self, path: str) -> Any:
        """DELETE ``/api/<path>``; raises ManagementApiError (HTTP 404 if there is none)."""
        return self._request("DELETE", path)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL comes from settings
            f"{self.url.rstrip('/')}/api/{path}", data=data, method=method
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            error = ManagementApiError(f"{method} /api/{path}: HTTP {exc.code}")
            error.status = exc.code
            raise error from exc
        except (OSError, ValueError) as exc:
            raise ManagementApiError(f"{method} /api/{path}: {type(exc).__name__}") from exc

    def queues(self, vhost: str, history: int = 0) -> dict[str, dict[str, Any]]:
        """Queue name -> the API's queue object, for every queue in ``vhost``.

        With ``history`` (seconds), each object also carries the broker's samples of
        its depths and message counters over that window, one every
        :data:`SAMPLE_SECONDS` (``*_details["samples"]``, newest first).
        """
        query = f"columns={QUEUE_COLUMNS}"
        if history:
            query += f",{HISTORY_COLUMNS}"
            for kind in ("lengths", "msg_rates"):
                query += f"&{kind}_age={history}&{kind}_incr={SAMPLE_SECONDS}"
        rows = self.get(f"queues/{quote(vhost, safe='')}?{query}")
        return {row["name"]: row for row in rows}

    def bindings(self, vhost: str) -> list[dict[str, Any]]:
        """Every binding in ``vhost`` (``source``, ``destination``, ``routing_key`` ...)."""
        return list(self.get(f"bindings/{quote(vhost, safe='')}"))


NODE_COLUMNS = "name,running,mem_alarm,disk_free_alarm"


def cluster_nodes(api: ManagementApi, product: str = "rabbitbus") -> list[dict[str, Any]]:
    """The cluster's nodes, sorted by name: whether each runs, its memory and disk alarms, and
    how many connections of ``product`` (clients that say so, as rabbitbus does) sit on it."""
    nodes = api.get(f"nodes?columns={NODE_COLUMNS}")
    ours: dict[str, int] = {}
    for connection in api.get("connections?columns=node,client_properties"):
        if (connection.get("client_properties") or {}).get("product") == product:
            ours[connection.get("node", "")] = ours.get(connection.get("node", ""), 0) + 1
    return [
        {
            "name": node["name"],
            "running": bool(node.get("running")),
            "alarms": [
                alarm
                for alarm, key in (("memory", "mem_alarm"), ("disk", "disk_free_alarm"))
                if node.get(key)
            ],
            "connections": ours.get(node["name"], 0),
        }
        for node in sorted(nodes, key=lambda node: node["name"])
    ]


def configured() -> ManagementApi | None:
    """The API from ``RABBITBUS["MANAGEMENT"]``, or None when it is not configured."""
    from rabbitbus.conf import settings

    options = settings.management
    if options is None:
        return None
    return ManagementApi(
        url=options.url,
        user=options.user,
        password=options.password,
        timeout=float(options.timeout),
    )
