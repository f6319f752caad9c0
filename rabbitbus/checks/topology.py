"""Checks across code and settings: every binding's exchange is declared somewhere (E034);
no work queue is classic when a connection lists several nodes (W004).

Consumers in ``rabbit.py`` bind their queues to exchanges by name; the
exchange itself (its type) comes from ``RABBITBUS['EXCHANGES']`` or from code
that registers it. A name declared nowhere makes ``rabbit_setup`` and the
worker fail with a 404 at startup: say so in ``manage.py check`` instead.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from rabbitbus import topology
from rabbitbus.consuming import registry

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


def classic_work_queues(
    specs: Iterable[registry.ConsumerSpec], multi_node: list[str]
) -> list[CheckMessage]:
    """One warning per consumer on a classic queue while ``multi_node`` (aliases whose
    ``URLS`` name several nodes) is not empty: a classic queue lives on one node, and its
    messages are out of reach while that node is down."""
    if not multi_node:
        return []
    return [
        Warning(
            f"Consumer {spec.name!r} reads the classic queue {spec.queue!r}, while connection "
            f"{multi_node[0]!r} lists several nodes: its messages live on one node and are "
            "out of reach while that node is down.",
            hint="Use queue_type='quorum' (the default): quorum queues are replicated.",
            id="rabbitbus.W004",
        )
        for spec in specs
        if spec.queue_type == "classic"
    ]


@register("rabbitbus")
def check_queue_types(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from rabbitbus.conf import settings

    try:
        aliases = list(settings.CONNECTIONS)
        multi_node = [alias for alias in aliases if len(settings.connection(alias).endpoints) > 1]
    except Exception:  # noqa: BLE001 - malformed settings: their own checks report them
        return []
    return classic_work_queues(registry.consumers.values(), multi_node)
