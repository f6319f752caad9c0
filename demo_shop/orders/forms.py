"""The storefront's two forms: adding to the cart, and checking out. Bounds for every input."""

from __future__ import annotations

import re

from django import forms

#: At most this many of one product per cart (a shop's "max per customer").
MAX_QUANTITY = 99
#: Card numbers have 12 to 19 digits (ISO/IEC 7812); spaces and dashes are allowed between.
CARD_DIGITS = re.compile(r"[0-9]{12,19}")


class AddToCartForm(forms.Form):
    """How many of one product to add; none given means one."""

    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, required=False)

    def clean_quantity(self) -> int:
        return self.cleaned_data["quantity"] or 1

    def check_total(self, in_cart: int) -> None:
        """Add an error if the cart would then hold more than :data:`MAX_QUANTITY`."""
        if in_cart + self.cleaned_data["quantity"] > MAX_QUANTITY:
            left = MAX_QUANTITY - in_cart
            self.add_error(
                "quantity",
                f"At most {MAX_QUANTITY} per order: your cart has {in_cart}, add {left} at most.",
            )


class CheckoutForm(forms.Form):
    """Who pays, and with what card (the demo declines cards starting with 4000)."""

    #: What the page offers before anything is typed: a card the demo accepts.
    EXAMPLE = {"email": "alice@example.com", "card_number": "4242424242424242"}

    email = forms.EmailField(max_length=254)
    card_number = forms.CharField(max_length=32, strip=True)

    def clean_card_number(self) -> str:
        digits = re.sub(r"[ -]", "", self.cleaned_data["card_number"])
        if not CARD_DIGITS.fullmatch(digits):
            raise forms.ValidationError("A card number has 12 to 19 digits.")
        return digits
