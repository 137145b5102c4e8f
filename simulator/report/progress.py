"""A terminal progress bar for runs that take longer than a second.

Engines and studies report progress through a plain callback, ``progress(done, total)``
(``simulate(scenario, progress=...)``, ``compare(..., progress=...)``); a
:class:`ProgressBar` is such a callback. It costs a clock read per call, shows nothing for
the first second (short runs print nothing), then draws a rich bar on stderr that disappears
when the run ends. It stays silent with ``--quiet`` or when stdout or stderr is not a
terminal, so pipes, files and CI logs never see it.

    with progress_bar("simulating", quiet=args.quiet) as progress:
        result = simulate(scenario, progress=progress)
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

DELAY_S = 1.0  # runs shorter than this print nothing


def terminal() -> bool:
    """Whether both stdout and stderr are terminals (a bar would be seen, not logged)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class ProgressBar:
    """A ``progress(done, total)`` callback that draws a bar once the run passes ``delay_s``.

    ``counts`` shows ``done/total`` (for scenarios of a study) besides the percentage.
    Disabled, it is a no-op costing one attribute test per call.
    """

    def __init__(self, description: str, *, enabled: bool = True, counts: bool = False,
                 delay_s: float = DELAY_S, console: Console | None = None):
        self.description = description
        self.enabled = enabled
        self.counts = counts
        self.delay_s = delay_s
        self.console = console
        self._start = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self.shown = False  # whether the bar was ever drawn (for tests)

    def __enter__(self) -> ProgressBar:
        self._start = time.monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __call__(self, done: float, total: float) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._start < self.delay_s:
                return
            self._open()
        assert self._bar is not None and self._task is not None
        self._bar.update(self._task, completed=done, total=max(total, done, 1e-12))

    def close(self) -> None:
        """Remove the bar from the terminal (if it was drawn)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _open(self) -> None:
        columns: list[str | ProgressColumn] = [
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
        if self.counts:
            columns.append(MofNCompleteColumn())
        columns.append(TimeElapsedColumn())
        console = self.console or Console(stderr=True)
        self._bar = Progress(*columns, console=console, transient=True)
        self._task = self._bar.add_task(self.description, total=None)
        self._bar.start()
        self.shown = True


def progress_bar(description: str, *, quiet: bool = False, counts: bool = False) -> ProgressBar:
    """A bar on stderr, enabled unless ``quiet`` or the output is not a terminal."""
    return ProgressBar(description, enabled=not quiet and terminal(), counts=counts)
