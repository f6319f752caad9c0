"""``manage.py rabbit_dlq list|replay|purge|discard QUEUE``: dead letters without a browser.

``rabbit_dlq list`` without a queue lists the known dead-letter queues.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rabbitbus.exceptions import RabbitBusError
from rabbitbus.monitoring import deadletters


class Command(BaseCommand):
    help = "List, replay, discard or purge the messages of a dead-letter queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "replay", "discard", "purge"])
        parser.add_argument(
            "queue",
            nargs="?",
            help="A dead-letter queue rabbitbus knows (name ends .dlq); "
            "'list' without one lists them.",
        )
        parser.add_argument("--id", action="append", dest="ids", help="Only this message id.")
        parser.add_argument("--all", action="store_true", help="Every message (replay/discard).")
        parser.add_argument("--limit", type=int, default=50, help="How many to list.")
        parser.add_argument("--connection", default="default", help="Connection alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        action, queue, alias = options["action"], options["queue"], options["connection"]
        if queue is None:
            return self._known(action)
        if action in ("replay", "discard") and not (options["ids"] or options["all"]):
            raise CommandError(f"{action} needs --id MESSAGE_ID (repeatable) or --all.")
        try:
            if action == "list":
                self._list(deadletters.browse(queue, options["limit"], alias=alias))
            elif action == "purge":
                self.stdout.write(f"Purged {deadletters.purge(queue, alias=alias)} message(s).")
            else:
                run = deadletters.replay if action == "replay" else deadletters.discard
                count = run(queue, None if options["all"] else options["ids"], alias=alias)
                self.stdout.write(f"{action.capitalize()}ed {count} message(s).")
        except RabbitBusError as exc:
            raise CommandError(str(exc)) from exc

    def _known(self, action: str) -> None:
        queues = deadletters.known()
        if action != "list":
            raise CommandError(
                f"{action} needs a dead-letter queue; known: {', '.join(queues) or 'none'}."
            )
        self.stdout.write("Known dead-letter queues (rabbit_dlq list QUEUE shows one):")
        for name in queues:
            self.stdout.write(f"  {name}")
        if not queues:
            self.stdout.write("  (none: no consumer is registered)")

    def _list(self, letters: list[deadletters.DeadLetter]) -> None:
        for letter in letters:
            origin = letter.origin()
            where = f"{origin[0] or '(default)'} / {origin[1]}" if origin else "unknown origin"
            error = f"{letter.error_class}: {letter.error}".strip(": ")
            attempts = "-" if letter.attempts is None else letter.attempts
            self.stdout.write(f"{letter.message_id}  to {where}  attempts={attempts}  {error}")
            self.stdout.write(f"    {letter.preview[:200]!r}")
        self.stdout.write(f"{len(letters)} message(s) shown; none were removed.")
