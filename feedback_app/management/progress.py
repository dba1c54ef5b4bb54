"""Progress of long commands: a bar redrawn in place on a terminal, a plain line per tenth of
the work otherwise (logs, pipes, cron mail), nothing with ``--no-progress``."""

from __future__ import annotations

import time

from django.core.management.base import OutputWrapper

BAR_WIDTH = 30
#: Without a known total, a plain line at most this often (seconds).
PLAIN_INTERVAL = 10.0


class Progress:
    """Call ``update(done)`` as work completes and ``finish()`` at the end.

    ``total`` may be None when the amount of work is not known in advance.
    """

    def __init__(
        self, stdout: OutputWrapper, total: int | None, unit: str, *, enabled: bool = True
    ) -> None:
        self.stdout = stdout
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.tty = enabled and stdout.isatty()
        self.started = time.monotonic()
        self._last_step = -1
        self._last_line = self.started
        self._drawn = False

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        if self.tty:
            self._draw(done)
        else:
            self._line(done)

    def finish(self) -> None:
        if self._drawn:
            self.stdout.write("")  # end the line the bar was drawn on
            self._drawn = False

    def _counts(self, done: int) -> str:
        if self.total:
            return f"{done:,} / {self.total:,} {self.unit}"
        return f"{done:,} {self.unit}"

    def _draw(self, done: int) -> None:
        if self.total:
            filled = min(BAR_WIDTH, done * BAR_WIDTH // self.total)
            percent = min(100, done * 100 // self.total)
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% "
        else:
            bar = ""
        elapsed = time.monotonic() - self.started
        self.stdout.write(f"\r  {bar}{self._counts(done)} ({elapsed:.0f} s)", ending="")
        self.stdout.flush()
        self._drawn = True

    def _line(self, done: int) -> None:
        now = time.monotonic()
        if self.total:
            # One line per tenth, not per batch: a million rows would flood a log otherwise.
            step = min(10, done * 10 // self.total)
            if step == self._last_step:
                return
            self._last_step = step
        elif now - self._last_line < PLAIN_INTERVAL:
            return
        self._last_line = now
        self.stdout.write(f"  {self._counts(done)}")
