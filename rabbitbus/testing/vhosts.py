"""Throwaway RabbitMQ virtual hosts for integration tests, through the management API.

AMQP cannot create or delete a vhost, so this module uses the management HTTP API
(https://www.rabbitmq.com/docs/management#http-api), for that only. Where the broker
is comes from, in order: an explicit URL, ``RABBITBUS_TEST_BROKER_URL``, then
``amqp://guest:guest@127.0.0.1:5672/``. The API is at ``RABBITBUS_TEST_MANAGEMENT_URL``
if set, else ``http://<broker host>:15672``, logged in as the AMQP URL's user.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from rabbitbus.conf import DEFAULT_URL, mask_url
from rabbitbus.exceptions import BrokerUnavailable, ManagementApiError
from rabbitbus.monitoring.mgmt import ManagementApi

#: Environment variables that say where the test broker and its management API are.
URL_ENV = "RABBITBUS_TEST_BROKER_URL"
MANAGEMENT_URL_ENV = "RABBITBUS_TEST_MANAGEMENT_URL"
MANAGEMENT_PORT = 15672
#: Every throwaway vhost's name starts with this (easy to find and clean by hand).
PREFIX = "rabbitbus-test"
#: The management API's timeout, in seconds: creating a vhost may take a moment.
API_TIMEOUT = 15.0


def broker_url(url: str | None = None) -> str:
    """``url``, else ``$RABBITBUS_TEST_BROKER_URL``, else the local default."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def in_vhost(url: str, vhost: str) -> str:
    """``url`` pointed at ``vhost`` (its path replaced)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def management_for(url: str, management_url: str | None = None) -> ManagementApi:
    """The management API of the broker at AMQP ``url``, as that URL's user."""
    parts = urlsplit(url)
    api_url = (
        management_url
        or os.environ.get(MANAGEMENT_URL_ENV)
        or f"http://{parts.hostname or '127.0.0.1'}:{MANAGEMENT_PORT}"
    )
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    return ManagementApi(url=api_url, user=user, password=password, timeout=API_TIMEOUT)


@dataclass
class Vhost:
    """One throwaway vhost on the broker at ``base_url``: :meth:`create`, then :meth:`delete`."""

    base_url: str = field(default_factory=broker_url)
    name: str = field(default_factory=lambda: f"{PREFIX}-{uuid.uuid4().hex[:12]}")
    management_url: str | None = None

    def __post_init__(self) -> None:
        self.api = management_for(self.base_url, self.management_url)

    @property
    def url(self) -> str:
        """The AMQP URL of this vhost."""
        return in_vhost(self.base_url, self.name)

    @property
    def user(self) -> str:
        return unquote(urlsplit(self.base_url).username or "guest")

    def create(self) -> None:
        """Create the vhost and give the URL's user every permission on it.

        Raises :class:`BrokerUnavailable` (saying where it looked) when the API is
        unreachable or refuses.
        """
        path = quote(self.name, safe="")
        try:
            self.api.put(f"vhosts/{path}", {"description": "rabbitbus.testing throwaway vhost"})
            everything = {"configure": ".*", "write": ".*", "read": ".*"}
            self.api.put(f"permissions/{path}/{quote(self.user, safe='')}", everything)
        except ManagementApiError as exc:
            why = getattr(exc.__cause__, "reason", None)  # e.g. "[Errno 111] Connection refused"
            raise BrokerUnavailable(
                f"Could not create the test vhost {self.name!r} through RabbitMQ's management "
                f"API at {self.api.url} ({exc}{f': {why}' if why else ''}). Is RabbitMQ running "
                f"at {mask_url(self.base_url)} with the management plugin? Set {URL_ENV} / "
                f"{MANAGEMENT_URL_ENV} to point elsewhere."
            ) from exc

    def delete(self) -> None:
        """Delete the vhost and everything in it; one that is already gone is fine."""
        try:
            self.api.delete(f"vhosts/{quote(self.name, safe='')}")
        except ManagementApiError as exc:
            if exc.status != 404:
                raise

    def exists(self) -> bool:
        """Whether the broker has this vhost."""
        try:
            self.api.get(f"vhosts/{quote(self.name, safe='')}")
        except ManagementApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True
