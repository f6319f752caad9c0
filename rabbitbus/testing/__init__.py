"""Helpers for testing code that uses rabbitbus: capture, run handlers, an in-memory broker.

See docs/testing.md. Importing this package changes nothing; each helper
installs its hooks only while it is active.
"""

from rabbitbus.testing.capture import Capture, RpcStub, capture_published
from rabbitbus.testing.published import Published, PublishedMessage

__all__ = [
    "Capture",
    "Published",
    "PublishedMessage",
    "RpcStub",
    "capture_published",
]
