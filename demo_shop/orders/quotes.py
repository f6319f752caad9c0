"""Asking the catalog service for prices over RPC, and saying so in words when it can't answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from demo_shop.catalog.rabbit import UnknownProduct
from rabbitbus import acall, call
from rabbitbus.exceptions import BrokerConnectionError, NoRoute, NoServer, RpcError, RpcTimeout

PROCEDURE = "catalog.quote"
#: A shopper waits this long at most for prices before the page explains.
TIMEOUT = 2.0
#: A page's status when the catalog refused the cart, or did not answer.
REFUSED, UNAVAILABLE = 409, 503


@dataclass(frozen=True)
class Answer:
    """The catalog's quote for a cart, or what went wrong in words and the page's status."""

    quote: dict[str, Any] | None
    problem: str = ""
    status: int = 200  # or REFUSED, UNAVAILABLE


def quote(cart: Mapping[str, int]) -> Answer:
    """The catalog service's quote for ``cart`` (sku -> quantity)."""
    try:
        return Answer(call(PROCEDURE, dict(cart), timeout=TIMEOUT))
    except (RpcError, BrokerConnectionError, UnknownProduct) as exc:
        return failed(exc)


async def aquote(cart: Mapping[str, int]) -> Answer:
    """The async twin of :func:`quote`."""
    try:
        return Answer(await acall(PROCEDURE, dict(cart), timeout=TIMEOUT))
    except (RpcError, BrokerConnectionError, UnknownProduct) as exc:
        return failed(exc)


def failed(error: BaseException) -> Answer:
    """The answer for a catalog that refused the cart or did not answer."""
    status = REFUSED if isinstance(error, UnknownProduct) else UNAVAILABLE
    return Answer(None, explain(error), status)


def refusal(answer: Answer) -> str:
    """Why the catalog's ``answer`` refuses to sell the cart now, in words; "" if it does not.

    A catalog that did not answer refuses nothing: the order is placed (its
    message waits in the outbox) and the inventory service decides.
    """
    if answer.quote is not None:
        return shortages(answer.quote)
    return answer.problem if answer.status == REFUSED else ""


def shortages(answer: Mapping[str, Any]) -> str:
    """What a quote flagged as short, with how many are left ("" when nothing is)."""
    short = [line for line in answer["lines"] if not line["available"]]
    return " ".join(f"Not enough {line['name']}: {left(line)}." for line in short)


def left(line: Mapping[str, Any]) -> str:
    """``"only 1 left"`` or ``"none left"`` for a quote line."""
    in_stock = int(line.get("in_stock", 0))
    return f"only {in_stock} left" if in_stock else "none left"


def explain(error: BaseException) -> str:
    """A sentence for the shopper; the details stay in the logs."""
    if isinstance(error, UnknownProduct):
        return f"Your cart holds a product the shop does not sell ({error}): empty the cart."
    if isinstance(error, NoRoute | NoServer):
        why = "the price service is not running"
    elif isinstance(error, RpcTimeout):
        why = f"the price service did not answer within {TIMEOUT:g} seconds"
    elif isinstance(error, BrokerConnectionError):
        why = "the shop's message broker cannot be reached"
    else:
        why = f"the price service failed ({error})"
    return f"We could not check current prices: {why}. Please try again in a moment."
