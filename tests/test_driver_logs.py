"""Which driver log records ``driver_logs.NetworkNoise`` demotes (pure logic).

The worker network tests show the effect end to end (one WARNING per reset).
"""

from __future__ import annotations

import logging
import sys

import aiormq.exceptions

from rabbitbus.transport.driver_logs import NetworkNoise


def reader_record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:  # noqa: BLE001 - we want the exc_info of this very error
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "aiormq.connection", logging.WARNING, __file__, 1,
        "Cancelling cause reader exited abnormally", (), exc_info,
    )  # fmt: skip


def socket_error() -> aiormq.exceptions.AMQPConnectionError:
    error = aiormq.exceptions.AMQPConnectionError("Server connection reset")
    error.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    return error


def test_a_reader_killed_by_the_socket_becomes_one_debug_line() -> None:
    record = reader_record(socket_error())
    NetworkNoise().filter(record)
    assert (record.levelno, record.exc_info) == (logging.DEBUG, None)
    assert "Server connection reset" in record.getMessage()


def test_a_malformed_frame_keeps_its_warning_and_traceback() -> None:
    record = reader_record(aiormq.exceptions.ConnectionFrameError("bad frame"))
    assert NetworkNoise().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info


def test_the_robust_channel_reopen_race_is_demoted_and_other_callback_errors_are_not() -> None:
    class RobustChannel:
        def _on_close(self) -> None: ...

    def record(callback: object, error: Exception) -> logging.LogRecord:
        args = (callback, type(error).__name__, error)
        return logging.LogRecord(
            "aio_pika.tools", logging.ERROR, __file__, 1, "Callback %r error: %s: %s", args, None
        )

    race = record(RobustChannel()._on_close, RuntimeError("<Connection: ...> closed"))
    other = record(RobustChannel()._on_close, ValueError("a bug"))
    for each in (race, other):
        NetworkNoise().filter(each)
    assert (race.levelno, other.levelno) == (logging.DEBUG, logging.ERROR)


def test_a_demoted_record_goes_on_only_where_its_logger_logs_debug() -> None:
    logger = logging.getLogger("aiormq.connection")
    level = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert not NetworkNoise().filter(reader_record(socket_error()))
        logger.setLevel(logging.DEBUG)
        assert NetworkNoise().filter(reader_record(socket_error()))
    finally:
        logger.setLevel(level)


def test_a_broker_forced_close_is_demoted_and_other_broker_closes_are_not() -> None:
    forced = reader_record(aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED - test"))
    refused = reader_record(aiormq.exceptions.ConnectionNotAllowed(530, "NOT_ALLOWED"))
    for each in (forced, refused):
        NetworkNoise().filter(each)
    assert (forced.levelno, refused.levelno) == (logging.DEBUG, logging.WARNING)


def test_pika_connection_errors_are_demoted_and_other_pika_records_are_not() -> None:
    def record(name: str) -> logging.LogRecord:
        message = "Error in _create_connection()."
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, (), None)

    failed = record("pika.adapters.blocking_connection")
    other = record("pika.spec")
    for each in (failed, other):
        NetworkNoise().filter(each)
    assert (failed.levelno, other.levelno) == (logging.DEBUG, logging.ERROR)
