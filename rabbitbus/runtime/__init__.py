"""The long-running process behind ``rabbit_consume``, ``rabbit_rpc`` and ``rabbit_tasks``.

:mod:`~rabbitbus.runtime.service` (:class:`~rabbitbus.runtime.service.Runtime`: services
on one kept-alive connection, signals, reconnect with backoff, drain),
:mod:`~rabbitbus.runtime.threads` (the threads ``def`` handlers run in),
:mod:`~rabbitbus.runtime.health` (heartbeat file and row),
:mod:`~rabbitbus.runtime.event_loop` (the loop the commands run on) and
:mod:`~rabbitbus.runtime.console` (what the commands tell their operator).
"""
