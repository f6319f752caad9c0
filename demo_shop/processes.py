"""The demo shop's worker processes, one per service as production runs them.

The one list behind ``scripts/services.sh`` (the demo and ``bench/shop.sh``),
the end-to-end tests (``tests/shop_services.py``) and ``docker-compose.yml``
(``tests/test_compose.py`` holds it to this list).

``python -m demo_shop.processes`` prints one line per process: its name, then
its ``manage.py`` arguments.
"""

from __future__ import annotations

#: service name -> ``manage.py`` arguments
WORKERS: dict[str, tuple[str, ...]] = {
    "inventory": ("rabbit_consume", "inventory"),
    "billing": ("rabbit_consume", "billing", "--tasks"),  # and the invoice emails
    "orders": ("rabbit_consume", "orders"),
    "rpc": ("rabbit_rpc",),
    "relay": ("rabbit_outbox",),
}

if __name__ == "__main__":
    for name, argv in WORKERS.items():
        print(name, *argv)
