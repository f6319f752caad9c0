"""The rabbitbus exception tree.

Everything the library raises on purpose derives from :class:`RabbitBusError`,
grouped by failure domain so callers can catch as broadly or narrowly as they
need. Driver errors (pika, aio-pika, aiormq) are translated with
``raise ... from exc``: sync and async code paths raise the same types.

Handler control signals (:class:`Reject`, :class:`Retry`) are not errors and do
not derive from :class:`RabbitBusError`.
"""

from __future__ import annotations


class RabbitBusError(Exception):
    """Root of every error rabbitbus raises."""


# -- configuration ---------------------------------------------------------


class ConfigurationError(RabbitBusError):
    """The RABBITBUS setting is invalid (system checks report the same)."""


# -- connection ------------------------------------------------------------


class BrokerConnectionError(RabbitBusError, ConnectionError):
    """The broker could not be reached or the connection was lost."""


class BrokerUnavailable(BrokerConnectionError):
    """No broker answered within the reconnect window."""


class AccessRefused(BrokerUnavailable):
    """The broker refused the login, or the virtual host (missing, or not permitted).

    Raised at once, without waiting out ``RECONNECT_TIMEOUT``: a setting to fix.
    """


class BrokerBlocked(BrokerConnectionError, TimeoutError):
    """The broker blocked publishing (memory or disk alarm) past the timeout."""


# -- topology --------------------------------------------------------------


class TopologyError(RabbitBusError):
    """An exchange, queue or binding could not be declared."""


class TopologyConflict(TopologyError):
    """An entity exists with arguments that differ from the declared ones."""


class QueueNodeDown(TopologyError):
    """A queue's home node is down (a classic queue on a lost cluster node): it cannot be
    declared or used until that node is back. Workers and RPC servers wait and try again."""


# -- publishing ------------------------------------------------------------


class PublishError(RabbitBusError):
    """A message was not accepted by the broker."""


class Unroutable(PublishError):
    """A mandatory message matched no queue and was returned."""


class ExchangeNotFound(PublishError):
    """The target exchange does not exist (the broker closed the channel)."""


class NotConfirmed(PublishError):
    """The broker nacked the message: it may not have been stored."""


class PublishTimeout(PublishError, TimeoutError):
    """No confirm arrived in time; the outcome is unknown (it may be stored)."""


class MessageTooLarge(PublishError, ValueError):
    """The encoded body exceeds MAX_MESSAGE_SIZE; nothing was sent."""


# -- arguments -------------------------------------------------------------


class InvalidArgument(RabbitBusError, ValueError, TypeError):
    """An argument is not what it must be (a timeout, an exchange, a routing key, a
    procedure name, an expiration); nothing was sent.

    Also a ``ValueError`` and a ``TypeError``: what the drivers or Python raised for
    these before, so an ``except`` written for either still catches it.
    """


# -- serialization ---------------------------------------------------------


class SerializationError(RabbitBusError, ValueError):
    """A payload could not be encoded."""


class TaskArgumentsError(SerializationError, TypeError):
    """A task's arguments are not JSON values: ``enqueue`` refused it, nothing was sent."""


class DecodeError(RabbitBusError, ValueError):
    """A received body could not be decoded (bad bytes, type or encoding)."""


# -- handler control (not errors) ----------------------------------------


class HandlerControl(Exception):  # noqa: N818 - control flow, not an error
    """Base of the signals a handler raises to steer its message."""


class Reject(HandlerControl):
    """Dead-letter the message now, without further attempts."""

    def __init__(self, reason: str = "rejected by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(HandlerControl):
    """Try the message again later, after ``delay`` seconds if given."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


# -- rpc -------------------------------------------------------------------


class RpcError(RabbitBusError):
    """A remote procedure call failed."""


class RpcTimeout(RpcError, TimeoutError):
    """No reply arrived in time (no server, or a slow one); the request expires unexecuted
    if no server took it, a server that took it does not start it past its deadline, but
    a server that already started may still finish it."""


class NoServer(RpcTimeout):
    """No reply in time, and no server consumes the procedure's queue (all stopped).

    The queue outlived its servers, so the request was accepted and waited
    there until it expired: it will not run.
    """


class NoRoute(RpcError):
    """No queue serves this procedure: the broker returned the request at once."""


class RpcNotSent(RpcError, BrokerUnavailable):
    """The request never left this process: no connection to the broker could be had
    within the call's timeout (or ``RECONNECT_TIMEOUT``). The procedure did not run, so
    calling again is safe. Also a :class:`BrokerUnavailable`."""


class RemoteError(RpcError):
    """The remote procedure raised an exception whose type is not registered as safe.

    ``type`` is the remote exception's qualified name, ``message`` its text and
    ``code`` a short machine-readable code (``"error"`` unless the exception
    or the server says otherwise).
    """

    def __init__(self, type: str, message: str, code: str = "error") -> None:  # noqa: A002
        super().__init__(f"{type}: {message}" if message else type)
        self.type = type
        self.message = message
        self.code = code


# -- monitoring -------------------------------------------------------------


class ManagementApiError(RabbitBusError):
    """The RabbitMQ management HTTP API could not be reached or refused a request."""

    #: The HTTP status of a refusal; None when the API could not be reached.
    status: int | None = None


class QueueNotFound(RabbitBusError, LookupError):
    """A queue rabbitbus does not know, or that does not exist on the broker."""
