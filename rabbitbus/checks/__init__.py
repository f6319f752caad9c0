"""Every configuration mistake as a Django system check, with its id and a hint.

:mod:`~rabbitbus.checks.settings` (RABBITBUS's keys, the worker, monitoring, management,
topology in settings), :mod:`~rabbitbus.checks.connections` (each connection),
:mod:`~rabbitbus.checks.bridges` (bridges and the outbox), :mod:`~rabbitbus.checks.topology`
(across code and settings); :mod:`~rabbitbus.checks.base` makes the messages. Each module
registers its checks when imported; :func:`register` (the app's ``ready()``) imports them.
The valid keys and defaults come from :mod:`rabbitbus.conf`.
"""


def register() -> None:
    """Register every system check of rabbitbus (the app's ``ready()``)."""
    from rabbitbus.checks import bridges, settings, topology  # noqa: F401 - registers on import
