"""Helpers for testing code that uses rabbitbus: capture, run handlers, an in-memory broker,
a throwaway vhost on a real broker.

See docs/testing.md. Importing this package changes nothing; each helper
installs its hooks only while it is active.
"""

from rabbitbus.testing.background import BackgroundWorker
from rabbitbus.testing.broker import RabbitBroker, RabbitBrokerMixin
from rabbitbus.testing.capture import Capture, RpcStub, capture_published
from rabbitbus.testing.consumers import ConsumerOutcome, arun_consumer, run_consumer
from rabbitbus.testing.memory import ChainTooDeep, Handled, InMemoryBroker
from rabbitbus.testing.published import Published, PublishedMessage

__all__ = [
    "BackgroundWorker",
    "Capture",
    "ChainTooDeep",
    "ConsumerOutcome",
    "Handled",
    "InMemoryBroker",
    "Published",
    "PublishedMessage",
    "RabbitBroker",
    "RabbitBrokerMixin",
    "RpcStub",
    "arun_consumer",
    "capture_published",
    "run_consumer",
]
