"""A check across code and settings: every binding's exchange is declared somewhere (E034).

Consumers in ``rabbit.py`` bind their queues to exchanges by name; the
exchange itself (its type) comes from ``RABBITBUS['EXCHANGES']`` or from code
that registers it. A name declared nowhere makes ``rabbit_setup`` and the
worker fail with a 404 at startup: say so in ``manage.py check`` instead.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, register

from rabbitbus import topology

#: Exchanges every broker has: no need to declare them.
PREDECLARED_PREFIX = "amq."


def undeclared_exchanges(
    bindings: Iterable[topology.Binding], exchanges: Container[str]
) -> list[CheckMessage]:
    """One error per binding whose exchange is neither in ``exchanges`` nor predeclared."""
    return [
        Error(
            f"Queue {binding.queue!r} is bound to exchange {binding.exchange!r}, "
            "which is declared nowhere.",
            hint=f"Add {binding.exchange!r} to RABBITBUS['EXCHANGES'] with its type, "
            "e.g. {'TYPE': 'topic'}.",
            id="rabbitbus.E034",
        )
        for binding in bindings
        if binding.exchange
        and not binding.exchange.startswith(PREDECLARED_PREFIX)
        and binding.exchange not in exchanges
    ]


@register("rabbitbus")
def check_bindings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Bindings registered in code; those in settings are E024's (rabbitbus.checks)."""
    try:
        known = topology.configured()
    except Exception:  # noqa: BLE001 - malformed settings: their own checks report them
        return []
    return undeclared_exchanges(topology.registry.bindings.values(), known.exchanges)
