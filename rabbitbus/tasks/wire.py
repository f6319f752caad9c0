"""A task on the wire: the JSON body of one task message. No I/O.

The message id is the result id, so a redelivered task keeps its result row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from rabbitbus.exceptions import Reject

#: ``type`` property of task messages (seen in the dashboard and dead letters).
MESSAGE_TYPE = "rabbitbus.task"


@dataclass(frozen=True)
class Job:
    """What a worker needs to run one task."""

    id: str
    task_path: str
    args: list[Any]
    kwargs: dict[str, Any]
    backend: str
    queue_name: str
    priority: int
    takes_context: bool
    run_after: datetime | None
    enqueued_at: datetime | None

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task_path,
            "args": self.args,
            "kwargs": self.kwargs,
            "backend": self.backend,
            "queue_name": self.queue_name,
            "priority": self.priority,
            "takes_context": self.takes_context,
            "run_after": _iso(self.run_after),
            "enqueued_at": _iso(self.enqueued_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def parse(body: Any) -> Job:
    """The job in a decoded message body; raises :class:`Reject` (a poison task) if malformed."""
    try:
        return Job(
            id=str(body["id"]),
            task_path=str(body["task"]),
            args=list(body["args"]),
            kwargs=dict(body["kwargs"]),
            backend=str(body["backend"]),
            queue_name=str(body["queue_name"]),
            priority=int(body["priority"]),
            takes_context=bool(body["takes_context"]),
            run_after=_moment(body.get("run_after")),
            enqueued_at=_moment(body.get("enqueued_at")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Reject(f"not a task message ({type(exc).__name__}: {exc})") from exc


def _moment(raw: Any) -> datetime | None:
    if raw is None:
        return None
    moment = parse_datetime(str(raw))
    if moment is None:
        raise ValueError(f"bad timestamp {raw!r}")
    return moment
