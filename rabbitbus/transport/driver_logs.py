"""Driver log records that a plain network fault makes noisy, demoted to DEBUG.

Each dropped or reset connection makes aiormq log a WARNING with a full
traceback ("Cancelling cause reader exited abnormally"), a connection the
broker closes on purpose (``rabbitmqctl close_connection``, a node drain) an
ERROR and that traceback, every failed connect attempt an ERROR ("error when
creating transport"), and aio-pika's robust channel an ERROR when it tries to
reopen on a connection that is closing; aio-pika's robust connection logs a
WARNING for every failed reconnect attempt, one a second for as long as an
outage lasts. pika logs seven ERROR lines, one with a traceback, for every
connect attempt that fails, and more for a connection that drops. A rabbitbus
process already logs one WARNING per lost connection, with the reason
(workers in ``runtime``, sync connections in ``outage``, async connections in
``connections``), and raises typed errors, so for socket-level failures and
broker-forced closes these become one-line DEBUG records. Anything else (a
malformed frame, a protocol error, a bug) keeps its level and its traceback.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq.exceptions

#: Exceptions below an aiormq connection error that mean "the network went away".
SOCKET_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError)
#: The reply code of a close the broker's operator asked for.
CONNECTION_FORCED = 320
#: pika's loggers that narrate connection setup and loss.
PIKA_CONNECTION_LOGGERS = frozenset(
    {
        "pika.adapters.utils.io_services_utils",
        "pika.adapters.utils.connection_workflow",
        "pika.adapters.blocking_connection",
        "pika.adapters.base_connection",
        "pika.connection",
    }
)


class NetworkNoise(logging.Filter):
    """Demotes the records described in the module docstring.

    A demoted record goes on only where its logger logs DEBUG: handlers check
    a record's level, not the level it was accepted at, so a handler without a
    level would otherwise print it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if any(check(record) for check in CHECKS):
            demote(record)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def is_reader_lost(record: logging.LogRecord) -> bool:
    """aiormq's reader died because the socket did (not because of a bad frame)."""
    if record.name != "aiormq.connection" or not record.exc_info:
        return False
    error = record.exc_info[1]
    if is_forced_close(error):
        return True
    if type(error) is not aiormq.exceptions.AMQPConnectionError:
        return False  # its other subclasses are closes the broker chose to send
    return isinstance(error.__cause__ or error.__context__, SOCKET_ERRORS)


def is_forced_close(error: BaseException | None) -> bool:
    """A ``CONNECTION_FORCED`` close: an operator or a stopping node closed it on purpose."""
    return (
        type(error) is aiormq.exceptions.ConnectionClosed
        and bool(error.args)
        and error.args[0] == CONNECTION_FORCED
    )


def is_remote_forced_close(record: logging.LogRecord) -> bool:
    """aiormq's ERROR for a ``Connection.Close`` frame with ``CONNECTION_FORCED``."""
    args = record.args if isinstance(record.args, tuple) else ()
    return (
        record.name == "aiormq.connection"
        and str(record.msg).startswith("Unexpected connection close from remote")
        and len(args) == 3
        and args[1] == CONNECTION_FORCED
    )


def is_connect_failure(record: logging.LogRecord) -> bool:
    """aiormq's ERROR for a connect attempt the network refused (an outage, retried)."""
    args = record.args if isinstance(record.args, tuple) else ()
    return (
        record.name == "aiormq.connection"
        and str(record.msg).startswith("error when creating transport")
        and len(args) == 1
        and isinstance(args[0], SOCKET_ERRORS)
    )


def is_pika_connection_noise(record: logging.LogRecord) -> bool:
    """pika's account of a connect attempt that failed or a connection that dropped.

    Every such failure reaches rabbitbus as an exception, which it translates
    (``BrokerUnavailable``, a refused login named as such) and logs once.
    """
    return record.name in PIKA_CONNECTION_LOGGERS and record.levelno >= logging.WARNING


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


CHECKS = (
    is_reader_lost,
    is_robust_reopen_race,
    is_reconnect_retry,
    is_remote_forced_close,
    is_connect_failure,
    is_pika_connection_noise,
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
    for name in ("aiormq.connection", "aio_pika.tools", "aio_pika.robust_connection",
                 *PIKA_CONNECTION_LOGGERS):  # fmt: skip
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
