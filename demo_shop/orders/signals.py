"""Signals the orders app sends; rabbitbus bridges turn them into messages."""

from django.dispatch import Signal

#: Sent inside the checkout transaction, once the order and its lines exist
#: (``post_save`` of Order fires before the lines are written).
order_placed = Signal()
