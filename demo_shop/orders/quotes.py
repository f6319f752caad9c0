"""Asking the catalog service for prices over RPC, and saying so in words when it can't answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rabbitbus import acall, call
from rabbitbus.exceptions import BrokerConnectionError, NoRoute, NoServer, RpcError, RpcTimeout

PROCEDURE = "catalog.quote"
#: A shopper waits this long at most for prices before the page explains.
TIMEOUT = 2.0


def quote(cart: Mapping[str, int]) -> tuple[dict[str, Any] | None, str]:
    """``(quote, "")`` from the catalog service, or ``(None, what went wrong in words)``."""
    try:
        return call(PROCEDURE, dict(cart), timeout=TIMEOUT), ""
    except (RpcError, BrokerConnectionError) as exc:
        return None, explain(exc)


async def aquote(cart: Mapping[str, int]) -> tuple[dict[str, Any] | None, str]:
    """The async twin of :func:`quote`."""
    try:
        return await acall(PROCEDURE, dict(cart), timeout=TIMEOUT), ""
    except (RpcError, BrokerConnectionError) as exc:
        return None, explain(exc)


def explain(error: BaseException) -> str:
    """A sentence for the shopper; the details stay in the logs."""
    if isinstance(error, NoRoute | NoServer):
        why = "the price service is not running"
    elif isinstance(error, RpcTimeout):
        why = f"the price service did not answer within {TIMEOUT:g} seconds"
    elif isinstance(error, BrokerConnectionError):
        why = "the shop's message broker cannot be reached"
    else:
        why = f"the price service failed ({error})"
    return f"We could not check current prices: {why}. Please try again in a moment."
