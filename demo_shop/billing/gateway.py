"""A stand-in payment gateway. Demo rule: cards starting with 4000 are declined."""

from __future__ import annotations

from decimal import Decimal

DECLINED_PREFIX = "4000"


class Declined(Exception):  # noqa: N818 - named like the domain
    """The card was refused."""


def charge(card_number: str, amount: Decimal) -> str:
    """Capture ``amount``; returns a transaction reference. Raises :class:`Declined`."""
    digits = "".join(ch for ch in card_number if ch.isdigit())
    if not digits or digits.startswith(DECLINED_PREFIX):
        raise Declined("The card was declined.")
    return f"ch_{digits[-4:]}_{amount}"


def refund(reference: str) -> None:
    """Give a capture back (always succeeds in the demo)."""
