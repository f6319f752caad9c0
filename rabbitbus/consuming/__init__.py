"""Consumers: the ``@consumer`` registry, dispatch (a delivery -> its outcome), acks,
retries, the idempotent inbox, group commit, and the worker's service
(:class:`~rabbitbus.consuming.worker.ConsumerService`).

Users write ``@rabbitbus.consumer`` and take a ``rabbitbus.ReceivedMessage``; the modules
here are the machinery behind them.
"""
