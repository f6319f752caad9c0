"""The Prometheus instruments; imported only once metrics are turned on.

Label values are bounded: exchanges, queues, consumers and procedures the code
declares, aliases from settings, and fixed outcome words. Never message ids.
Gauges carry a multiprocess mode for ``PROMETHEUS_MULTIPROC_DIR`` (web processes).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

published_messages = Counter(
    "rabbitbus_published_messages",
    "Messages published, by exchange and outcome (confirmed, unroutable, nacked, ...).",
    ["exchange", "outcome"],
)
publish_confirm_seconds = Histogram(
    "rabbitbus_publish_confirm_seconds",
    "Seconds from sending a publish to its confirm (a batch's messages share its time).",
)
consumed_messages = Counter(
    "rabbitbus_consumed_messages",
    "Deliveries handled by workers, by queue, consumer and outcome "
    "(acked, retried, dead_lettered, duplicate, rejected, requeued).",
    ["queue", "consumer", "outcome"],
)
handler_seconds = Histogram(
    "rabbitbus_handler_seconds", "Seconds a consumer took to handle a delivery.", ["consumer"]
)
rpc_calls = Counter(
    "rabbitbus_rpc_calls",
    "RPC calls made by this process (the client side), by procedure and outcome.",
    ["procedure", "outcome"],
)
rpc_call_seconds = Histogram(
    "rabbitbus_rpc_call_seconds", "Seconds an RPC call took, as the caller saw it.", ["procedure"]
)
rpc_requests = Counter(
    "rabbitbus_rpc_requests",
    "RPC requests served by this process (the server side), by procedure and outcome.",
    ["procedure", "outcome"],
)
rpc_request_seconds = Histogram(
    "rabbitbus_rpc_request_seconds", "Seconds a procedure took to run.", ["procedure"]
)
outbox_pending = Gauge(
    "rabbitbus_outbox_pending",
    "Outbox rows waiting to be relayed, as the relay last counted them.",
    multiprocess_mode="livemostrecent",
)
outbox_oldest_pending_seconds = Gauge(
    "rabbitbus_outbox_oldest_pending_seconds",
    "Age of the oldest pending outbox row, as the relay last saw it (0: none).",
    multiprocess_mode="livemostrecent",
)
outbox_relayed = Counter("rabbitbus_outbox_relayed", "Outbox rows published and marked sent.")
connection_up = Gauge(
    "rabbitbus_connection_up",
    "1 while the worker or RPC server is connected to the broker node (host:port), else 0.",
    ["alias", "node"],
    multiprocess_mode="livemax",
)
reconnects = Counter(
    "rabbitbus_reconnects", "Connections a worker or RPC server opened again.", ["alias"]
)
tasks_enqueued = Counter(
    "rabbitbus_tasks_enqueued",
    "django.tasks tasks enqueued by this process, by backend alias, queue name and task.",
    ["backend", "queue", "task"],
)
tasks_finished = Counter(
    "rabbitbus_tasks_finished",
    "django.tasks tasks run to an end by this process, by backend alias, queue name, task and "
    "status (successful, failed).",
    ["backend", "queue", "task", "status"],
)
task_seconds = Histogram(
    "rabbitbus_task_seconds", "Seconds a task ran, from its start to its end.", ["task"]
)
