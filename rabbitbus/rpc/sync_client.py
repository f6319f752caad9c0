"""The sync RPC client behind :func:`rabbitbus.rpc.call`: pika, direct reply-to.

The request is ``mandatory``: a missing server queue comes back as a
``basic.return`` and fails the call at once with :class:`NoRoute`. Its hot paths
(one-write requests, replies read off the socket) are in
:mod:`rabbitbus.transport.sync_rpc`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rabbitbus.exceptions import AccessRefused, BrokerUnavailable
from rabbitbus.rpc.procedures import DIRECT_REPLY_TO, result_from_reply
from rabbitbus.rpc.requests import (
    CONSUMER_CHECK_LIMIT,
    Reply,
    Request,
    amqp_properties,
    connection_lost,
    no_route,
    not_sent,
    request,
    timed_out,
)
from rabbitbus.transport import connections, sync_rpc
from rabbitbus.transport.sync_rpc import Connection, ReplyReader, consumer_count

logger = logging.getLogger("rabbitbus.rpc.client")  # one logger name for both clients


class SyncRpcClient:
    """One thread's calls: a channel consuming direct reply-to on its pika connection."""

    def __init__(self, conn: connections.SyncConnection) -> None:
        self.conn = conn
        self.channel: Any = None
        self._waiting: str | None = None
        self._reply: Reply | None = None
        self._returned = False
        self._reader: ReplyReader | None = None

    def call(self, name: str, args: Any, kwargs: dict[str, Any], timeout: float) -> Any:
        req = request(name, args, kwargs, timeout)
        deadline = time.monotonic() + timeout
        connection, channel = self._ready(name, deadline)
        self._waiting, self._reply, self._returned = req.correlation_id, None, False
        try:
            self._roundtrip(connection, channel, req, deadline)
        except sync_rpc.LOST as exc:
            self._forget()
            raise connection_lost(name, exc) from exc
        finally:
            self._waiting = None
        if self._returned:
            raise no_route(name)
        if self._reply is None:
            blocked = self.conn.blocked
            try:
                consumers = None if blocked else self._consumers(req.routing_key)
            except sync_rpc.QueueMissing:
                raise no_route(name) from None  # deleted after it took the request
            raise timed_out(name, timeout, consumers, blocked)
        return result_from_reply(*self._reply)

    def _ready(self, name: str, deadline: float) -> tuple[Connection, Any]:
        """The connection and reply channel, (re)connecting until ``deadline``; nothing is
        sent yet, so failing raises :class:`RpcNotSent`, or :class:`AccessRefused` when the
        broker refused us (a setting to fix, as for publishing)."""
        delays = connections.backoff_delays(base=0.05, cap=0.5)
        while True:
            try:
                return self._channel(deadline)
            except AccessRefused:
                raise
            except BrokerUnavailable as exc:
                raise not_sent(name, exc) from exc
            except sync_rpc.LOST as exc:
                self._forget()
                delay = next(delays)
                if time.monotonic() + delay >= deadline:
                    raise not_sent(name, exc) from exc
                time.sleep(delay)

    def _forget(self) -> None:
        self.conn.discard()
        self.channel = None

    def _consumers(self, queue: str) -> int | None:
        """How many servers consume ``queue``, asked after a timeout on the connection as it
        is (never reconnecting), for at most :data:`CONSUMER_CHECK_LIMIT` seconds; ``None``
        if that cannot be told in time (a half-open connection, say) or at all. Raises
        :class:`~rabbitbus.transport.sync_rpc.QueueMissing` if the queue is gone."""
        connection = self.conn.connection
        if connection is None or not connection.is_open:
            return None
        try:
            return consumer_count(connection, queue, CONSUMER_CHECK_LIMIT)
        except TimeoutError:
            self._forget()  # it answers nothing in time: the next call starts afresh
            return None
        except sync_rpc.FAILED:
            return None

    def _roundtrip(
        self, connection: Connection, channel: Any, req: Request, deadline: float
    ) -> None:
        sync_rpc.send_request(channel, req, amqp_properties(req))
        reader = self._reader
        if reader is None or reader.channel is not channel:
            reader = self._reader = ReplyReader.attach(channel)
        while self._reply is None and not self._returned:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if reader is not None and reader.usable():
                delivery = reader.read(remaining)
                if delivery is not None:
                    self._take_reply(delivery.correlation_id, delivery.body, delivery.content_type)
            else:
                connection.process_data_events(time_limit=remaining)
                if reader is not None:
                    reader.pika_ran = time.monotonic()

    def _channel(self, deadline: float) -> tuple[Connection, Any]:
        channel, now = self.channel, time.monotonic()
        if (
            channel is not None
            and channel.is_open
            and channel.connection is self.conn.connection
            and now - self.conn.last_used < connections.PROBE_AFTER
            and not self._input_waiting()
        ):
            # Skip the idle-death probe (pika's poll) while calls come back to back.
            self.conn.last_used = now
            return channel.connection, channel
        connection = self.conn.get(deadline, probe=True)
        if channel is None or not channel.is_open or channel.connection is not connection:
            channel = connection.channel()
            channel.add_on_return_callback(self._on_return)
            # Direct reply-to needs a no-ack consumer before the first publish.
            channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)
            self.channel = channel
        return connection, channel

    def _input_waiting(self) -> bool:
        """Whether anything arrived since the last call: a late reply, a heartbeat, or the
        broker's close or EOF. pika must read it before a request goes out, so that a
        connection lost since the last call is reopened and the request sent on the new
        one, not lost with the old. Without a reader of our own (TLS, ``FAST_PATHS`` off)
        that cannot be told cheaply: pika polls before every call."""
        reader = self._reader
        return reader is None or reader.channel is not self.channel or reader.input_waiting()

    def _on_reply(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        self._take_reply(properties.correlation_id, body, properties.content_type)

    def _take_reply(
        self, correlation_id: str | None, body: bytes, content_type: str | None
    ) -> None:
        if self._waiting is None or correlation_id != self._waiting:
            logger.debug("Dropping RPC reply with unknown or late id %s", correlation_id)
            return
        self._reply = (body, content_type)
        self._waiting = None  # a duplicate of this reply is now late

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        if properties.correlation_id == self._waiting:
            self._returned = True
