"""The @consumer decorator, its validation and the topology it registers."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import rabbitbus
from rabbitbus import topology
from rabbitbus.consuming import registry, worker
from rabbitbus.consuming.registry import ConsumerSpec
from rabbitbus.exceptions import ConfigurationError
from rabbitbus.messages import ReceivedMessage


@pytest.fixture
def clean_registry() -> Iterator[None]:
    consumers = dict(registry.consumers)
    queues, bindings = dict(topology.registry.queues), dict(topology.registry.bindings)
    yield
    registry.consumers.clear()
    registry.consumers.update(consumers)
    topology.registry.queues, topology.registry.bindings = queues, bindings


@pytest.mark.usefixtures("clean_registry")
def test_consumer_registers_the_handler_and_its_topology() -> None:
    @rabbitbus.consumer(queue="reg.q", bindings=[("shop", "order.*")], attempts=4, backoff=(1, 2))
    def handle(message: ReceivedMessage) -> None: ...

    spec = registry.consumers[
        f"{__name__}.test_consumer_registers_the_handler_and_its_topology.<locals>.handle"
    ]
    assert spec.handler is handle and not spec.is_async
    work = topology.registry.queues["reg.q"]
    assert (work.type, work.dead_letter_exchange, work.dead_letter_routing_key) == (
        "quorum",
        "",
        "reg.q.dlq",
    )
    assert work.delivery_limit == registry.DEFAULT_DELIVERY_LIMIT  # quorum: limit and DLX together
    assert "reg.q.dlq" in topology.registry.queues
    for delay in (1000, 2000):
        tier = topology.registry.queues[f"reg.q.retry.{delay}"]
        assert (tier.message_ttl, tier.dead_letter_exchange, tier.dead_letter_routing_key) == (
            delay,
            "",
            "reg.q",
        )
    assert ("reg.q", "shop", "order.*") in topology.registry.bindings


@pytest.mark.usefixtures("clean_registry")
def test_async_handlers_are_recognised() -> None:
    @rabbitbus.consumer(queue="reg.async", name="reg-async")
    async def handle(message: ReceivedMessage) -> None: ...

    assert registry.consumers["reg-async"].is_async


@pytest.mark.usefixtures("clean_registry")
@pytest.mark.parametrize(
    "options",
    [
        {"queue": ""},
        {"queue": "q", "prefetch": 0},
        {"queue": "q", "concurrency": 0},
        {"queue": "q", "attempts": 0},
        {"queue": "q", "backoff": (5, 1)},
        {"queue": "q", "queue_type": "stream"},
        {"queue": "q", "many": True},  # a list of messages needs a batch to take them from
    ],
)
def test_invalid_options_are_refused(options: dict) -> None:
    with pytest.raises(ConfigurationError):
        rabbitbus.consumer(**options)(lambda message: None)


@pytest.mark.usefixtures("clean_registry")
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"concurrency": "2"}, "concurrency must be an int, not '2'"),
        ({"prefetch": 2.0}, "prefetch must be an int, not 2.0"),
        ({"prefetch": True}, "prefetch must be an int, not True"),
        ({"attempts": 2.5}, "attempts must be an int, not 2.5"),
        ({"delivery_limit": "20"}, "delivery_limit must be an int, not '20'"),
        ({"bindings": [("shop",)]}, "bindings must be a list of (exchange, routing_key) pairs"),
        ({"bindings": [("shop", "a", "b")]}, "('shop', 'a', 'b') is not one"),
        ({"bindings": [("shop", None)]}, "('shop', None) is not one"),
        ({"bindings": "shop"}, "not 'shop'"),
        ({"backoff": 5}, "backoff must be (base, cap) seconds, not 5"),
        ({"backoff": ("1", 5)}, "backoff must be (base, cap) seconds, not ('1', 5)"),
        ({"queue": 5}, "queue must be a non-empty name, not 5"),
    ],
)
def test_an_option_of_the_wrong_type_is_a_configuration_error(options: dict, named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        rabbitbus.consumer(**{"queue": "reg.typed", "name": "typed", **options})(lambda m: None)
    assert str(raised.value).startswith("Consumer 'typed': ")
    assert named in str(raised.value)
    assert "typed" not in registry.consumers


@pytest.mark.usefixtures("clean_registry")
def test_an_async_handler_can_be_idempotent() -> None:
    async def handle(message: ReceivedMessage) -> None: ...

    rabbitbus.consumer(queue="reg.idem", idempotent=True)(handle)
    spec = registry.consumers[f"{__name__}.{handle.__qualname__}"]
    assert spec.idempotent and spec.is_async


@pytest.mark.usefixtures("clean_registry")
def test_two_consumers_on_one_queue_are_refused() -> None:
    rabbitbus.consumer(queue="reg.same", name="a")(lambda message: None)
    with pytest.raises(ConfigurationError, match="both consume"):
        rabbitbus.consumer(queue="reg.same", name="b")(lambda message: None)


@pytest.mark.usefixtures("clean_registry")
def test_rabbit_consume_refuses_unknown_names() -> None:
    with pytest.raises(CommandError, match="Unknown consumer"):
        call_command("rabbit_consume", "nope", stdout=io.StringIO())


def handler_named(function_name: str) -> object:
    def handler(message: ReceivedMessage) -> None: ...

    handler.__name__ = function_name
    return handler


@pytest.mark.usefixtures("clean_registry")
def test_rabbit_consume_takes_an_unambiguous_function_name() -> None:
    rabbitbus.consumer(queue="reg.fn", name="shipping.rabbit.returns")(handler_named("returns"))
    out = io.StringIO()
    call_command("rabbit_consume", "returns", "--list", stdout=out)
    assert out.getvalue().startswith("shipping.rabbit.returns (sync) queue=reg.fn ")


@pytest.mark.usefixtures("clean_registry")
def test_an_ambiguous_function_name_lists_the_candidates() -> None:
    rabbitbus.consumer(queue="reg.fn1", name="shipping.rabbit.returns")(handler_named("returns"))
    rabbitbus.consumer(queue="reg.fn2", name="billing.rabbit.returns")(handler_named("returns"))
    with pytest.raises(CommandError, match="ambiguous") as raised:
        call_command("rabbit_consume", "returns", "--list", stdout=io.StringIO())
    assert "shipping.rabbit.returns, billing.rabbit.returns" in str(raised.value)


@pytest.mark.usefixtures("clean_registry")
def test_an_unknown_name_lists_the_registered_consumers() -> None:
    rabbitbus.consumer(queue="reg.fn3", name="shipping.rabbit.returns")(handler_named("returns"))
    with pytest.raises(CommandError, match="Unknown consumer 'nope'") as raised:
        call_command("rabbit_consume", "nope", stdout=io.StringIO())
    assert "shipping.rabbit.returns" in str(raised.value)


@pytest.mark.usefixtures("clean_registry")
def test_rabbit_consume_list_applies_overrides() -> None:
    rabbitbus.consumer(queue="reg.list", name="lister", bindings=[("shop", "#")])(lambda m: None)
    out = io.StringIO()
    call_command("rabbit_consume", "lister", "--list", "--prefetch", "7", stdout=out)
    assert "lister (sync) queue=reg.list (quorum) bindings=shop[#] prefetch=7" in out.getvalue()


@pytest.mark.usefixtures("clean_registry")
@pytest.mark.parametrize("option", ["--prefetch", "--concurrency"])
def test_a_limit_of_zero_is_refused_not_ignored(option: str) -> None:
    rabbitbus.consumer(queue="reg.zero", name="zero")(lambda m: None)
    name = option.removeprefix("--")
    for args in (["zero", "--list"], ["zero", "--rpc", "fib", "--list"]):
        with pytest.raises(CommandError, match=f"Consumer 'zero': {name} must be at least 1"):
            call_command("rabbit_consume", *args, option, "0", stdout=io.StringIO())
    registry.consumers.clear()  # --rpc alone (clean_registry puts them back)
    with pytest.raises(CommandError, match=f"^{option} must be at least 1, not 0.$"):
        call_command("rabbit_consume", "--rpc", "fib", "--list", option, "0", stdout=io.StringIO())
    for value in ("0", "-1"):
        with pytest.raises(CommandError, match=f"^{option} must be at least 1, not {value}.$"):
            call_command("rabbit_rpc", "fib", option, value, stdout=io.StringIO())


@pytest.mark.parametrize(
    "command", [["rabbit_rpc", "nosuch"], ["rabbit_consume", "--rpc", "nosuch", "--list"]]
)
def test_an_unknown_rpc_procedure_lists_the_registered_ones(command: list[str]) -> None:
    with pytest.raises(
        CommandError, match=r"Unknown RPC procedure\(s\): nosuch; registered: "
    ) as raised:
        call_command(*command, stdout=io.StringIO())
    assert "fib, test.aecho" in str(raised.value)


@pytest.mark.parametrize("name", ["", None, 5])
def test_an_rpc_procedure_needs_a_name(name: object) -> None:
    from rabbitbus import rpc

    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        rpc.procedure(name)  # type: ignore[arg-type]
    assert name not in rpc.registered()


@pytest.mark.django_db
def test_prune_deletes_only_old_inbox_rows() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from rabbitbus.models import ProcessedMessage

    old = ProcessedMessage.objects.create(consumer="c", message_id="old")
    ProcessedMessage.objects.filter(pk=old.pk).update(
        processed_at=timezone.now() - timedelta(days=8)
    )
    ProcessedMessage.objects.create(consumer="c", message_id="new")
    out = io.StringIO()
    call_command("rabbit_consume", "--prune", stdout=out)
    assert "Deleted 1 processed-message rows." in out.getvalue()
    assert list(ProcessedMessage.objects.values_list("message_id", flat=True)) == ["new"]


def test_the_worker_greeting_names_how_each_consumer_commits() -> None:
    def handle(message: object) -> None: ...

    specs = [
        ConsumerSpec(name="one", handler=handle, queue="q1"),
        ConsumerSpec(name="batch", handler=handle, queue="q2", transaction="batch"),
        ConsumerSpec(
            name="many", handler=handle, queue="q3", transaction="batch", many=True, idempotent=True
        ),
    ]
    lines = worker.summary(specs)
    assert lines[0].endswith("attempts=5")
    assert lines[1].endswith("attempts=5 batch")
    assert lines[2].endswith("attempts=5 idempotent batch many")
