"""A TLS listener in front of the plain broker, and certificates made for the tests.

A client cannot tell :class:`TlsFront` from a RabbitMQ ``listeners.ssl``
port: it completes a real TLS handshake with a certificate signed by a test
CA, then relays the decrypted bytes to 127.0.0.1:5672 and back. Restarting the
shared node with a TLS listener would disturb every other test, so the TLS
tests use this instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.broker import UPSTREAM


@dataclass(frozen=True)
class Certificates:
    ca: Path  #: the CA that signed ``cert``
    other_ca: Path  #: a CA that signed nothing here
    cert: Path  #: for ``localhost`` and 127.0.0.1
    key: Path
    elsewhere_cert: Path  #: for ``rabbit.internal`` only
    elsewhere_key: Path


def make_certificates(directory: Path) -> Certificates:
    """Two CAs and two server certificates signed by the first, with ``openssl``."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): these are the extensions it asks for.
    ca_extensions = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign")
    for ca in ("ca", "other-ca"):
        subject = f"/CN=rabbitbus test {ca}"
        run("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-subj", subject,
            *(arg for ext in ca_extensions for arg in ("-addext", ext)))  # fmt: skip
    for name, names in (
        ("server", "DNS:localhost,IP:127.0.0.1"),
        ("elsewhere", "DNS:rabbit.internal"),
    ):
        (directory / f"{name}.ext").write_text(
            f"subjectAltName={names}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
        )
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        signed = ("-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", f"{name}.ext")
        run("x509", "-req", "-in", f"{name}.csr", *signed, "-out", f"{name}.pem")
    return Certificates(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
        elsewhere_cert=directory / "elsewhere.pem",
        elsewhere_key=directory / "elsewhere.key",
    )


class TlsFront:
    """``with TlsFront(cert, key) as front:`` listens on ``front.port`` until the block ends."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int] = UPSTREAM):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        self.port = 0
        #: TLS handshakes completed (a client that would not trust us never completes one).
        self.handshakes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TlsFront:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._relay, "127.0.0.1", 0, ssl=self.context, ssl_handshake_timeout=5
        )

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        await self._server.wait_closed()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.handshakes += 1
        upstream_reader, upstream = await asyncio.open_connection(*self.upstream)
        pumps = [
            asyncio.ensure_future(_pump(client_reader, upstream)),
            asyncio.ensure_future(_pump(upstream_reader, client)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client, upstream):
                writer.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
