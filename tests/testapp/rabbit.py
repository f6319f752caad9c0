"""Handlers for worker subprocess tests, registered only in those subprocesses.

The pytest process itself leaves the registry empty (other tests count what
``rabbit_setup`` declares); queue names carry a per-test prefix.
"""

from __future__ import annotations

import os
import time

from rabbitbus.dispatch import ReceivedMessage
from rabbitbus.registry import consumer

PREFIX = os.environ.get("RABBITBUS_TEST_WORKER_PREFIX")

if PREFIX:

    @consumer(queue=f"{PREFIX}.effects", idempotent=True, prefetch=10, attempts=3, backoff=(0.1, 1))
    def apply_effect(message: ReceivedMessage) -> None:
        """Sleep as the body asks, then record one Effect row (idempotently)."""
        from tests.testapp.models import Effect

        time.sleep(float(message.body.get("sleep", 0)))
        Effect.objects.create(consumer="effects", message_id=message.message_id or "")
