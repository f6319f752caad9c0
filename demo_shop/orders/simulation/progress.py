"""A one-line text progress bar, redrawn in place; silent when switched off."""

from __future__ import annotations

from typing import TextIO


class ProgressBar:
    """``[#####.....] 532/1000 note`` on ``stream``, each draw over the last one."""

    WIDTH = 30

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._drawn = False

    @classmethod
    def for_terminal(cls, stream: TextIO, wanted: bool = True) -> ProgressBar:
        """A bar that draws only when ``wanted`` and ``stream`` is a terminal."""
        return cls(stream, enabled=wanted and stream.isatty())

    def draw(self, done: int, total: int, note: str = "") -> None:
        if not self.enabled:
            return
        filled = self.WIDTH * min(done, total) // total if total else 0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        # \x1b[K clears what a longer previous line left behind.
        self.stream.write(f"\r[{bar}] {done}/{total} {note}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line, so what follows starts on a new one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
