"""What the test-suite serves, discovered like any app's rabbit.py.

RPC procedures are always registered. Worker handlers are registered only in
worker subprocesses (RABBITBUS_TEST_WORKER_PREFIX set): the pytest process
leaves the consumer registry empty, and queue names carry a per-test prefix.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from rabbitbus import rpc
from rabbitbus.consuming.registry import consumer
from rabbitbus.messages import ReceivedMessage

#: Arguments of every executed ``test.record`` call, in this process.
RECORDED: list[Any] = []


@rpc.register_error
class OutOfStock(Exception):  # noqa: N818 - a domain error named like the domain
    """A domain error registered as safe: the caller gets this very class."""


class Unregistered(Exception):
    code = "unregistered"


@rpc.procedure("test.echo")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@rpc.procedure("test.aecho")
async def aecho(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


@rpc.procedure("test.echo_value")
def echo_value(value: Any) -> Any:
    """``test.aecho`` as a ``def``: what a Celery echo task is (bench/rpc.py)."""
    return value


@rpc.procedure("test.sleep")
def sleep(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


@rpc.procedure("test.record")
def record(token: str) -> str:
    RECORDED.append(token)
    return token


@rpc.procedure("test.fail")
def fail(message: str) -> None:
    raise Unregistered(message)


@rpc.procedure("test.out_of_stock")
async def out_of_stock(sku: str) -> None:
    raise OutOfStock(f"{sku} is sold out")


@rpc.procedure("test.touch")
def touch(path: str, delay: float = 0) -> str:
    """Create ``path`` after ``delay`` seconds: visible proof of execution across processes."""
    time.sleep(delay)
    with open(path, "w") as file:
        file.write("ran")
    return path


@rpc.procedure("test.ledger")
def ledger(path: str, token: str, seconds: float) -> str:
    """Append ``token`` to the file ``path`` as it starts (a ledger of which requests ran,
    across processes), then take ``seconds``."""
    with open(path, "a") as file:
        file.write(token + "\n")
    time.sleep(seconds)
    return token


@rpc.procedure("test.aledger")
async def aledger(path: str, token: str, seconds: float) -> str:
    """``test.ledger`` as an ``async def``."""
    with open(path, "a") as file:
        file.write(token + "\n")
    await asyncio.sleep(seconds)
    return token


PREFIX = os.environ.get("RABBITBUS_TEST_WORKER_PREFIX")

if PREFIX:

    @consumer(
        queue=f"{PREFIX}.effects",
        idempotent=True,
        prefetch=10,
        attempts=3,
        backoff=(0.1, 1),
        inline=os.environ.get("RABBITBUS_TEST_INLINE") == "1",
    )
    def apply_effect(message: ReceivedMessage) -> None:
        """Sleep as the body asks (or until the file ``until`` exists), then record one Effect row
        (idempotently)."""
        from tests.testapp.models import Effect

        time.sleep(float(message.body.get("sleep", 0)))
        until = message.body.get("until")
        for _ in range(3000 if until else 0):  # at most 5 minutes
            if os.path.exists(until):
                break
            time.sleep(0.1)
        Effect.objects.create(consumer="effects", message_id=message.message_id or "")


if PREFIX and os.environ.get("RABBITBUS_TEST_BATCH") == "many":

    @consumer(
        queue=f"{PREFIX}.batch",
        idempotent=True,
        transaction="batch",
        many=True,
        prefetch=50,
        attempts=2,
        backoff=(0.1, 1),
    )
    def apply_effects_in_batch(messages: list[ReceivedMessage]) -> None:
        """Group commit, the batch's messages at once: their Effect rows in one INSERT. A batch
        holding ``poison`` rejects and one holding ``fail`` fails, so each is run again alone."""
        from rabbitbus.exceptions import Reject
        from tests.testapp.models import Effect

        if any(message.body.get("poison") for message in messages):
            raise Reject("poison")
        if any(message.body.get("fail") for message in messages):
            raise RuntimeError("this message always fails")
        time.sleep(sum(float(message.body.get("sleep", 0)) for message in messages))
        Effect.objects.bulk_create(
            Effect(consumer="batch", message_id=message.message_id or "") for message in messages
        )

elif PREFIX and os.environ.get("RABBITBUS_TEST_BATCH"):

    @consumer(
        queue=f"{PREFIX}.batch",
        idempotent=True,
        transaction="batch",
        prefetch=50,
        attempts=2,
        backoff=(0.1, 1),
    )
    def apply_effect_in_batch(message: ReceivedMessage) -> None:
        """Group commit: one Effect row per message, dead-letter ``poison``, fail ``fail``."""
        from rabbitbus.exceptions import Reject
        from tests.testapp.models import Effect

        if message.body.get("poison"):
            raise Reject("poison")
        if message.body.get("fail"):
            raise RuntimeError("this message always fails")
        time.sleep(float(message.body.get("sleep", 0)))
        Effect.objects.create(consumer="batch", message_id=message.message_id or "")


if PREFIX and os.environ.get("RABBITBUS_TEST_OUTCOMES"):
    from rabbitbus.exceptions import Reject, Retry

    @consumer(queue=f"{PREFIX}.outcomes", prefetch=10, attempts=2, backoff=(0.05, 0.05))
    def outcomes(message: ReceivedMessage) -> None:
        """Does what the body says: ``ok``, ``reject``, ``fail`` (every attempt) or
        ``retry_once`` (Retry on the first attempt, ok on the second): a known mix of
        outcomes for tests/test_metrics.py."""
        do = message.body["do"]
        if do == "reject":
            raise Reject("asked to")
        if do == "fail":
            raise ValueError("asked to fail")
        if do == "retry_once" and message.attempt == 1:
            raise Retry(delay=0.05)
