"""The messages of rabbitbus's system checks: ids ``rabbitbus.<id>``, each with a hint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, Warning


def error(id_: str, msg: str, hint: str) -> Error:
    """An error ``rabbitbus.<id_>``."""
    return Error(msg, hint=hint, id=f"rabbitbus.{id_}")


def warning(id_: str, msg: str, hint: str) -> Warning:
    """A warning ``rabbitbus.<id_>``."""
    return Warning(msg, hint=hint, id=f"rabbitbus.{id_}")


def unknown_keys(raw: dict[str, Any], known: Iterable[str], where: str) -> list[CheckMessage]:
    """E002 naming the keys of ``raw`` not in ``known`` (none if all are known)."""
    unknown = sorted(set(raw) - set(known))
    if not unknown:
        return []
    return [
        error(
            "E002",
            f"Unknown key(s) {', '.join(unknown)} in {where}.",
            f"Valid keys: {', '.join(sorted(known))}.",
        )
    ]
