"""What RabbitMQ said when it refused a connection: the login, the vhost, a permission.

A refused login is a setting to fix, not an outage to wait out: connecting
code stops retrying and raises :class:`~rabbitbus.exceptions.AccessRefused`
with the broker's own words. Messages name the user and the virtual host,
never the password.

pika keeps the broker's ``Connection.Close`` reply (``ProbableAuthenticationError``,
``ProbableAccessDeniedError``); aiormq keeps it for a refused login but not for
a refused virtual host (it raises ``InvalidFrameError`` naming only the frame's
type), so the async message then names both possible causes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiormq.exceptions
import pika.exceptions

from rabbitbus.conf import Endpoint

PROBABLE_LOGIN_REFUSALS = (
    pika.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
)
#: "(530) 'NOT_ALLOWED - vhost x not found'" in pika's exception text.
_REPLY = re.compile(r"\((\d+)\) [\"'](.*)[\"']")


def describe(exc: BaseException | None, endpoint: Endpoint) -> str | None:
    """Why the broker at ``endpoint`` refused the connection behind ``exc``; None if it did not."""
    for error in chain(exc):
        reason = _describe_one(error, endpoint)
        if reason is not None:
            return reason
    return None


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then what caused it (``__cause__``, else ``__context__``), and so on, each once.

    The chain may loop: aiormq re-raises the exception it stored when its connection
    was reset, so that exception ends up in its own context.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _describe_one(exc: BaseException, endpoint: Endpoint) -> str | None:
    user, vhost = endpoint.username, endpoint.vhost
    # Both drivers say "probable" when the socket closes mid-handshake: only the broker's
    # own reply (ACCESS_REFUSED, NOT_ALLOWED) makes it a refusal, not a cut connection.
    text = str(exc)
    if isinstance(exc, aiormq.exceptions.AuthenticationError) or (
        isinstance(exc, PROBABLE_LOGIN_REFUSALS) and "ACCESS_REFUSED" in text
    ):
        return f"RabbitMQ refused the login of user {user!r} (ACCESS_REFUSED)"
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        found = _REPLY.search(text)
        if found is None or found.group(1) != "530":
            return None
        if "not found" in found.group(2):
            return f"RabbitMQ has no virtual host {vhost!r} ({found.group(2)})"
        return f"RabbitMQ does not allow user {user!r} on virtual host {vhost!r} ({found.group(2)})"
    if isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in text:
        return (
            f"RabbitMQ refused to open virtual host {vhost!r} for user {user!r} (NOT_ALLOWED): "
            "the virtual host does not exist or the user has no permission on it"
        )
    return None
