"""A sync publisher process for the log tests: every 0.1 s until SIGTERM, publishes a
tick; every second, writes one to the outbox (for a relay to send).

``python -m tests.log_publisher`` with ``DJANGO_SETTINGS_MODULE`` set. Failed
publishes are counted, not logged: the lines in its output are rabbitbus's own.
"""

from __future__ import annotations

import signal
import threading

import django


def main() -> None:
    django.setup()
    import rabbitbus
    from rabbitbus import outbox
    from rabbitbus.exceptions import RabbitBusError

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sent = failed = 0
    while not stop.wait(0.1):
        if (sent + failed) % 10 == 0:  # SQLite: few writes, or the worker's heartbeat waits
            outbox.enqueue("amq.topic", "log.relayed", {}, mandatory=False)
        try:
            rabbitbus.publish("amq.topic", "log.tick", {}, mandatory=False)
            sent += 1
        except RabbitBusError:
            failed += 1
    print(f"log_publisher: sent {sent}, failed {failed}", flush=True)


if __name__ == "__main__":
    main()
