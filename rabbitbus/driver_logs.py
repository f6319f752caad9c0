"""Driver log records that a plain network fault makes noisy, demoted to DEBUG.

Each dropped or reset connection makes aiormq log a WARNING with a full
traceback ("Cancelling cause reader exited abnormally"), and aio-pika's robust
channel an ERROR when it tries to reopen on a connection that is closing;
aio-pika's robust connection logs a WARNING for every failed reconnect
attempt, one a second for as long as an outage lasts. A rabbitbus process
already logs one WARNING per lost connection, with the reason (workers in
``runtime``, web processes' async connections in ``connections``), so for
socket-level failures these become one-line DEBUG records. Anything else (a
malformed frame, a protocol error, a bug) keeps its level and its traceback.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq.exceptions

#: Exceptions below an aiormq connection error that mean "the network went away".
SOCKET_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError)


class NetworkNoise(logging.Filter):
    """Demotes the records described in the module docstring; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if is_reader_lost(record) or is_robust_reopen_race(record) or is_reconnect_retry(record):
            demote(record)
        return True


def is_reader_lost(record: logging.LogRecord) -> bool:
    """aiormq's reader died because the socket did (not because of a bad frame)."""
    if record.name != "aiormq.connection" or not record.exc_info:
        return False
    error = record.exc_info[1]
    if type(error) is not aiormq.exceptions.AMQPConnectionError:
        return False  # its subclasses are closes the broker chose to send
    return isinstance(error.__cause__ or error.__context__, SOCKET_ERRORS)


def is_robust_reopen_race(record: logging.LogRecord) -> bool:
    """aio-pika's robust channel tried to reopen on a connection already closing."""
    args = record.args if isinstance(record.args, tuple) else ()
    return (
        record.name == "aio_pika.tools"
        and len(args) == 3
        and "RobustChannel._on_close" in repr(args[0])
        and isinstance(args[2], RuntimeError)
        and str(args[2]).endswith("closed")
    )


def is_reconnect_retry(record: logging.LogRecord) -> bool:
    """aio-pika's robust connection failed one reconnect attempt (it tries every second;
    rabbitbus has logged the loss once already)."""
    return record.name == "aio_pika.robust_connection" and str(record.msg).startswith(
        'Connection attempt to "%s" failed'
    )


def demote(record: logging.LogRecord) -> None:
    if record.exc_info and record.exc_info[1] is not None and not record.args:
        error = record.exc_info[1]
        record.msg = f"{record.msg} ({type(error).__name__}: {error})"
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    record.exc_info, record.exc_text = None, None


_filter = NetworkNoise()


def install() -> None:
    """Add the filter to the driver loggers concerned (idempotent)."""
    for name in ("aiormq.connection", "aio_pika.tools", "aio_pika.robust_connection"):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
