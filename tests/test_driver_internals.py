"""Every private attribute of pika, aio-pika and aiormq that rabbitbus touches, checked
on live objects of the installed versions (issue 15).

All of them are in rabbitbus/transport/: the fast paths (confirms.py, sync_rpc.py,
replies.py, amqp_tap.py) and a few workarounds (connections.py, opening.py). A
driver release that renames one fails here, by name, instead of somewhere deep in a
publish or an RPC call. Add a row when the code reaches for a new one; a test keeps this
list honest by searching the code for every name it holds.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aio_pika.robust_connection
import aiormq
import aiormq.abc
import aiormq.connection
import pika
import pytest

from rabbitbus.conf import settings
from rabbitbus.transport import aio, amqp_tap
from rabbitbus.transport.endpoints import endpoint_order
from tests.broker import Broker

ROOT = Path(__file__).resolve().parent.parent

#: (object, attribute, where rabbitbus uses it). Objects are named as in `live` below.
INTERNALS = [
    (
        "pika.BlockingConnection",
        "_impl",
        "confirms.py, connections.py, sync_rpc.py",
    ),
    ("pika.BlockingConnection", "_flush_output", "confirms.py: wait for confirms"),
    (
        "pika.BlockingConnection",
        "_ready_events",
        "sync_rpc.py: nothing pending before reads",
    ),
    ("pika.BlockingConnection", "_channels_pending_dispatch", "sync_rpc.py: idem"),
    ("pika.SelectConnection", "_adapter_call_later", "confirms.py: the confirm tick"),
    ("pika.SelectConnection", "_adapter_remove_timeout", "confirms.py: idem"),
    ("pika.SelectConnection", "_adapter_disconnect_stream", "connections.py: drop a dead socket"),
    ("pika.SelectConnection", "_transport", "sync_rpc.py: write_now, the reply reader"),
    ("pika.SelectConnection", "_frame_buffer", "sync_rpc.py: the reply reader"),
    ("pika.SelectConnection", "_on_data_available", "sync_rpc.py: the reply reader"),
    ("pika.SelectConnection", "_output_marshaled_frames", "sync_rpc.py: write_now"),
    ("pika.SelectConnection", "_body_max_length", "sync_rpc.py: one-write requests"),
    ("pika transport", "_sock", "sync_rpc.py: write_now, the reply reader"),
    ("pika.Channel", "_set_cookie", "sync_rpc.py: a BlockingChannel over its own channel"),
    ("pika.BlockingChannel", "_impl", "sync_rpc.py: one-write requests"),
    ("pika.Channel", "_raise_if_not_open", "sync_rpc.py: idem"),
    ("aiormq.Channel", "_on_return_frame", "aio.py: on_returns (acall's returned requests)"),
    ("aiormq.Channel", "_Channel__get_content_header", "aio.py: on_returns"),
    ("aiormq.Channel", "_read_content", "aio.py: on_returns"),
    (
        "aiormq.Connection",
        "_Connection__connection_unblocked",
        "opening.py: RobustConnection.blocked",
    ),
]

#: Names aio-pika reads on the connection subclass rabbitbus gives it (opening.py's
#: RobustConnection overrides _close_called and reads the reconnect task).
AIO_PIKA_SOURCE = [
    "self._close_called",
    "self.__reconnection_task",
    "async def __connect_transport",  # overridden to move on to the next node
]


#: asyncio's own low-level names for event loop implementations (uvloop calls them too):
#: runtime/threads.py hides the running loop from Django's ORM while an inline handler runs.
ASYNCIO = ["_get_running_loop", "_set_running_loop"]


@pytest.mark.parametrize("name", ASYNCIO)
def test_asyncio_still_lets_a_loop_set_the_running_loop(name: str) -> None:
    assert callable(getattr(asyncio, name, None))


@pytest.fixture(scope="module")
def live(test_vhost: str) -> Iterator[dict[str, Any]]:
    """One object of each kind, connected to the test vhost."""
    broker = Broker(test_vhost)
    connection = pika.BlockingConnection(broker.parameters())
    channel = connection.channel()
    impl = connection._impl
    opened: list[Any] = []
    impl_channel = impl.channel(on_open_callback=opened.append)
    while not opened:
        connection.process_data_events(time_limit=0.1)

    async def aiormq_connection() -> Any:
        return await aiormq.connect(broker.url())

    loop = asyncio.new_event_loop()
    amqp = loop.run_until_complete(aiormq_connection())
    amqp_channel = loop.run_until_complete(amqp.channel(publisher_confirms=False))
    try:
        yield {
            "pika.BlockingConnection": connection,
            "pika.SelectConnection": impl,
            "pika transport": impl._transport,
            "pika.Channel": impl_channel,
            "pika.BlockingChannel": channel,
            "aiormq.Connection": amqp,
            "aiormq.Channel": amqp_channel,
        }
    finally:
        loop.run_until_complete(amqp.close())
        loop.close()
        impl_channel.close()
        while not impl_channel.is_closed:
            connection.process_data_events(time_limit=0.1)
        connection.close()


@pytest.mark.parametrize(
    ("owner", "name", "used_by"), INTERNALS, ids=[f"{o}.{n}" for o, n, _ in INTERNALS]
)
def test_the_installed_drivers_have_the_internals_rabbitbus_uses(
    live: dict[str, Any], owner: str, name: str, used_by: str
) -> None:
    assert hasattr(live[owner], name), (
        f"{owner} has no {name!r} in pika {version('pika')} / aiormq {version('aiormq')}: "
        f"{used_by} relies on it"
    )


@pytest.mark.parametrize("name", AIO_PIKA_SOURCE)
def test_aio_pika_still_reads_what_our_robust_connection_overrides(name: str) -> None:
    source = inspect.getsource(aio_pika.robust_connection)
    assert name in source, f"aio-pika {version('aio-pika')} no longer reads {name}"


def test_aiormq_still_offers_the_write_queue_and_frames_the_rpc_server_writes() -> None:
    """transport/replies.py queues hand-built frames as aiormq's own ChannelFrame, and the
    tap opens sockets through aiormq's TransportFactory."""
    assert {"payload", "should_close"} <= set(inspect.signature(aiormq.abc.ChannelFrame).parameters)
    assert "write_queue" in inspect.getsource(aiormq.connection.Connection)
    assert "write_queue" in inspect.getsource(aiormq.Channel.__init__) or hasattr(
        aiormq.Channel, "write_queue"
    )
    assert callable(getattr(aiormq.connection.TransportFactory, "create", None))
    assert "transport_factory" in inspect.signature(aiormq.connection.Connection).parameters


def test_a_runtime_connection_opened_for_the_tap_reads_through_it() -> None:
    """aio-pika passes the tap's socket opener on to aiormq (``opening.Connection`` declares
    it as a parameter; aio-pika drops keyword arguments it does not know): without it the
    RPC server's fast path would fall back to aiormq's reader, slower and unnoticed."""
    if not settings.FAST_PATHS:
        pytest.skip("the tap is a fast path")
    cs = settings.connection("default")

    async def opened() -> tuple[Any, dict[str, Any]]:
        connection = await aio.connect(endpoint_order(cs)[0], cs, tapped=True)
        try:
            return amqp_tap.of(connection), aio.server_properties(connection)
        finally:
            await aio.close(connection)

    tap, server = asyncio.run(opened())
    assert isinstance(tap, amqp_tap.DeliveryTap)
    assert tap.writer is not None, "the tap's factory did not open the socket"
    assert "product" in server


def test_every_private_driver_name_in_the_code_is_listed_here() -> None:
    """The list above is complete: each ``x._name`` the modules that talk to the drivers
    use on a driver object is one of its rows (or a name of our own)."""
    # Django documents _meta and _default_manager as model API; the rest are our own.
    own = {"_meta", "_default_manager", "_replace", "_exit", "_passed_at", "_on_close"}
    listed = (
        {name for _, name, _ in INTERNALS}
        | set(ASYNCIO)
        | {
            "_close_called",
            "_RobustConnection__reconnection_task",  # AIO_PIKA_SOURCE's self.__reconnection_task
            "_RobustConnection__connect_transport",  # and its __connect_transport
        }
    )
    found = set()
    for path in (ROOT / "rabbitbus").rglob("*.py"):
        found |= private_names(path.read_text())
    assert found - own - listed == set(), "driver internals used but not checked here"


def private_names(text: str) -> set[str]:
    """``x._name`` (not on ``self`` or ``cls``), name-mangled ``_Class__name`` and
    ``getattr(x, "_name")`` in ``text``."""
    found = {m.group(1) for m in re.finditer(r"\b(?!self\b|cls\b)[a-z]\w*\.(_[a-z]\w*)", text)}
    found.update(re.findall(r"\"(_[A-Z]\w*__\w+)\"", text))
    found.update(re.findall(r"\.(_[A-Z]\w*__\w+)", text))
    found.update(re.findall(r"getattr\(\w[\w.]*, \"(_[a-z]\w*)\"", text))
    return found


def test_only_the_transport_touches_driver_internals() -> None:
    listed = {name for _, name, _ in INTERNALS} | {"_close_called"}
    outside = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "rabbitbus").rglob("*.py")
        if "transport" not in path.relative_to(ROOT / "rabbitbus").parts
        for name in private_names(path.read_text()) & listed
    }
    assert outside == set()
