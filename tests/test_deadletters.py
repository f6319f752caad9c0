"""Dead-letter queues: browse without loss, replay to the origin, discard, purge."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pika
import pytest
from django.core.management import CommandError, call_command

from rabbitbus.exceptions import QueueNotFound
from rabbitbus.monitoring import deadletters
from tests.broker import Broker
from tests.monitoring_helpers import Shop, dead_letter, get_all, shop_topology


@pytest.fixture
def shop(broker: Broker) -> Iterator[Shop]:
    with shop_topology(broker) as shop:
        yield shop


def test_browse_shows_error_and_origin_and_keeps_messages(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "m1")
    dead_letter(broker, shop, "m2")
    letters = deadletters.browse(shop.dlq)
    assert [letter.message_id for letter in letters] == ["m1", "m2"]
    assert letters[0].error_class == "ValueError"
    assert letters[0].error == "bad <order>"
    assert letters[0].attempts == 3
    assert letters[0].origin() == (shop.exchange, "order.placed")
    assert letters[0].preview == '{"n":1}'
    assert broker.wait_for(lambda: broker.queue_depth(shop.dlq) == 2)


def test_browse_limit(broker: Broker, shop: Shop) -> None:
    for n in range(3):
        dead_letter(broker, shop, f"m{n}")
    assert len(deadletters.browse(shop.dlq, limit=2)) == 2
    assert broker.wait_for(lambda: broker.queue_depth(shop.dlq) == 3)


def test_replay_selected_moves_only_it_to_the_origin(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "keep")
    dead_letter(broker, shop, "go", body=b'{"n":2}')
    assert deadletters.replay(shop.dlq, ["go"]) == 1
    [(properties, body)] = get_all(broker, shop.queue)
    assert (properties.message_id, body) == ("go", b'{"n":2}')
    assert "x-rabbitbus-error" not in properties.headers
    assert properties.headers["x-rabbitbus-replayed"] == 1
    assert properties.content_type == "application/json"
    assert [p.message_id for p, _ in get_all(broker, shop.dlq)] == ["keep"]


def test_replay_all(broker: Broker, shop: Shop) -> None:
    for n in range(3):
        dead_letter(broker, shop, f"m{n}")
    assert deadletters.replay(shop.dlq) == 3
    assert broker.queue_depth(shop.dlq) == 0
    assert sorted(p.message_id for p, _ in get_all(broker, shop.queue)) == ["m0", "m1", "m2"]


def test_replay_uses_x_death_when_the_broker_dead_lettered(broker: Broker, shop: Shop) -> None:
    source = f"{shop.queue}.src"
    with broker.channel() as channel:
        channel.queue_declare(
            source,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": shop.dlq},
        )
        channel.queue_bind(source, shop.exchange, "order.placed")
        channel.basic_publish(
            shop.exchange, "order.placed", b"{}", pika.BasicProperties(message_id="bx")
        )
        get_all(broker, shop.queue)  # the work queue got its own copy; only the DLQ matters
        method, _, _ = channel.basic_get(source)
        channel.basic_reject(method.delivery_tag, requeue=False)
    assert broker.wait_for(lambda: broker.queue_depth(shop.dlq) == 1)
    [letter] = deadletters.browse(shop.dlq)
    assert letter.origin() == (shop.exchange, "order.placed")
    assert letter.error == "rejected"
    assert deadletters.replay(shop.dlq, ["bx"]) == 1
    assert broker.wait_for(lambda: broker.queue_depth(source) == 1)
    with broker.channel() as channel:
        channel.queue_delete(source)


def test_discard_selected(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "a")
    dead_letter(broker, shop, "b")
    assert deadletters.discard(shop.dlq, ["a"]) == 1
    assert [p.message_id for p, _ in get_all(broker, shop.dlq)] == ["b"]
    assert broker.queue_depth(shop.queue) == 0


def test_purge_counts(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "a")
    dead_letter(broker, shop, "b")
    assert deadletters.purge(shop.dlq) == 2
    assert broker.queue_depth(shop.dlq) == 0


@pytest.mark.parametrize("name", ["nope.dlq", "../x", "%2F", "<script>.dlq"])
def test_unknown_queue_is_refused(shop: Shop, name: str) -> None:
    with pytest.raises(QueueNotFound):
        deadletters.purge(name)


def test_work_queue_is_not_a_dead_letter_queue(shop: Shop) -> None:
    with pytest.raises(QueueNotFound):
        deadletters.browse(shop.queue)


def test_rabbit_dlq_list_replay_purge(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "c1")
    dead_letter(broker, shop, "c2")
    out = io.StringIO()
    call_command("rabbit_dlq", "list", shop.dlq, stdout=out)
    assert "c1" in out.getvalue() and "ValueError: bad <order>" in out.getvalue()
    assert "2 message(s) shown" in out.getvalue()
    call_command("rabbit_dlq", "replay", shop.dlq, "--id", "c2", stdout=out)
    assert "Replayed 1 message(s)." in out.getvalue()
    assert broker.queue_depth(shop.queue) == 1
    call_command("rabbit_dlq", "purge", shop.dlq, stdout=out)
    assert "Purged 1 message(s)." in out.getvalue()
    assert broker.queue_depth(shop.dlq) == 0


def test_rabbit_dlq_replay_needs_a_selection(shop: Shop) -> None:
    with pytest.raises(CommandError, match="--all"):
        call_command("rabbit_dlq", "replay", shop.dlq)


def test_rabbit_dlq_unknown_queue_names_the_known_ones(shop: Shop) -> None:
    with pytest.raises(CommandError, match="not a known dead-letter queue") as raised:
        call_command("rabbit_dlq", "list", "other.dlq")
    assert shop.dlq in str(raised.value)


def test_bare_rabbit_dlq_list_lists_the_known_queues(shop: Shop) -> None:
    out = io.StringIO()
    call_command("rabbit_dlq", "list", stdout=out)
    assert f"  {shop.dlq}\n" in out.getvalue()
    assert f"  {shop.queue}\n" not in out.getvalue()


def test_rabbit_dlq_replay_without_a_queue_names_the_known_ones(shop: Shop) -> None:
    with pytest.raises(CommandError, match="needs a dead-letter queue") as raised:
        call_command("rabbit_dlq", "replay", "--all")
    assert shop.dlq in str(raised.value)


def test_rabbit_dlq_discard(broker: Broker, shop: Shop) -> None:
    dead_letter(broker, shop, "d1")
    dead_letter(broker, shop, "d2")
    out = io.StringIO()
    call_command("rabbit_dlq", "discard", shop.dlq, "--all", stdout=out)
    assert "Discarded 2 message(s)." in out.getvalue()
    assert broker.queue_depth(shop.dlq) == 0 and broker.queue_depth(shop.queue) == 0


def test_replay_to_a_missing_exchange_raises_and_keeps_the_message(
    broker: Broker, shop: Shop
) -> None:
    from rabbitbus.exceptions import ExchangeNotFound

    dead_letter(broker, shop, "lost-origin")
    with broker.channel() as channel:
        channel.exchange_delete(shop.exchange)
    with pytest.raises(ExchangeNotFound):
        deadletters.replay(shop.dlq)
    assert broker.wait_for(lambda: broker.queue_depth(shop.dlq) == 1)


def test_replay_without_an_origin_keeps_the_message(broker: Broker, shop: Shop) -> None:
    with broker.channel() as channel:
        channel.basic_publish("", shop.dlq, b"{}", pika.BasicProperties(message_id="nowhere"))
    with pytest.raises(QueueNotFound, match="does not say where it came from"):
        deadletters.replay(shop.dlq, ["nowhere"])
    assert broker.wait_for(lambda: broker.queue_depth(shop.dlq) == 1)


@pytest.mark.parametrize(
    ("death", "origin"),
    [
        ({"exchange": "shop", "routing-keys": ["order.placed"]}, ("shop", "order.placed")),
        ({"exchange": "shop", "routing-keys": []}, ("shop", "")),
        ({"exchange": "shop", "routing-keys": 5}, ("shop", "")),
        ({"exchange": "shop", "routing-keys": "order.placed"}, ("shop", "")),
        ({"exchange": "shop", "routing-keys": [b"order.placed"]}, ("shop", "order.placed")),
        ({}, ("", "")),
    ],
)
def test_a_forged_x_death_gives_an_origin_or_none_never_an_error(
    death: dict[str, object], origin: tuple[str, str]
) -> None:
    """B7: x-death comes from the wire; anyone may publish one to a dead-letter queue."""
    letter = deadletters.DeadLetter("id", {"x-death": [death]}, {}, b"{}")
    assert letter.origin() == origin
    for forged in ("abc", 5, [], ["abc"], None):
        assert deadletters.DeadLetter("id", {"x-death": forged}, {}, b"{}").origin() is None
