"""A relay process that stops for good between publishing a batch and marking it sent.

``python -m tests.hanging_relay BATCH_SIZE`` (with ``DJANGO_SETTINGS_MODULE`` set) runs
one :class:`~rabbitbus.outbox.relay.Relay` whose ``before_mark`` hook prints
``published N; hanging before mark`` on stderr and sleeps, so a test can SIGKILL it at
exactly that point (tests/test_outbox_pg.py).
"""

from __future__ import annotations

import sys
import threading
import time

import django


def hang(result: object) -> None:
    confirmed = len(result.confirmed)  # type: ignore[attr-defined]
    sys.stderr.write(f"rabbitbus-relay: published {confirmed}; hanging before mark\n")
    sys.stderr.flush()
    while True:
        time.sleep(3600)


def main(batch_size: int) -> None:
    django.setup()
    from rabbitbus.outbox.relay import Relay

    Relay(options={"BATCH_SIZE": batch_size}, before_mark=hang).run(threading.Event())


if __name__ == "__main__":
    main(int(sys.argv[1]))
