"""One connection of ``RABBITBUS['CONNECTIONS']``: its broker addresses, parsed and masked."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from rabbitbus.conf.schema import ConnectionOptions, read
from rabbitbus.exceptions import ConfigurationError

MASK = "******"


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``******``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:{MASK}"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


@dataclass(frozen=True)
class Endpoint:
    """One broker address parsed from an AMQP URL."""

    url: str = field(repr=False)
    host: str
    port: int
    vhost: str
    username: str
    password: str = field(repr=False)
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        tls = parts.scheme == "amqps"
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            url=url,
            host=parts.hostname or "localhost",
            port=parts.port or (5671 if tls else 5672),
            vhost=unquote(path) or "/",
            username=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            tls=tls,
        )

    def with_vhost(self, vhost: str) -> Endpoint:
        """The same broker and credentials, in another virtual host."""
        parts = urlsplit(self.url)
        url = urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
        return Endpoint.from_url(url)

    @property
    def node(self) -> str:
        """``host:port``: which broker node this is, without credentials or vhost."""
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class ConnectionSettings:
    """A validated ``CONNECTIONS`` entry. Its repr never shows a password."""

    alias: str
    endpoints: tuple[Endpoint, ...]
    heartbeat: int
    connection_timeout: float
    blocked_connection_timeout: float
    publish_timeout: float
    reconnect_timeout: float
    connection_name: str | None
    tls: dict[str, Any] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context with verification on unless TLS INSECURE is set."""
        if not any(endpoint.tls for endpoint in self.endpoints):
            return None
        context = ssl.create_default_context(cafile=self.tls.get("CA_FILE"))
        if self.tls.get("CERT_FILE"):
            context.load_cert_chain(self.tls["CERT_FILE"], self.tls.get("KEY_FILE"))
        if self.tls.get("INSECURE"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse_connection(alias: str, raw: Any) -> ConnectionSettings:
    """Validate and parse one ``CONNECTIONS`` entry.

    Raises :class:`ConfigurationError` naming the first problem; the system
    checks report every problem with the same ids.
    """
    from rabbitbus.checks.connections import connection_errors

    errors = [error for error in connection_errors(alias, raw) if error.is_serious()]
    if errors:
        first = errors[0]
        raise ConfigurationError(f"{first.id}: {first.msg}")
    options = read(ConnectionOptions, raw, f"RABBITBUS['CONNECTIONS'][{alias!r}]")
    return ConnectionSettings(
        alias=alias,
        endpoints=tuple(Endpoint.from_url(url) for url in options.urls or [options.url]),
        heartbeat=int(options.heartbeat),
        connection_timeout=float(options.connection_timeout),
        blocked_connection_timeout=float(options.blocked_connection_timeout),
        publish_timeout=float(options.publish_timeout),
        reconnect_timeout=float(options.reconnect_timeout),
        connection_name=options.connection_name,
        tls=dict(options.tls or {}),
    )
