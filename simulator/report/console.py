"""The rich consoles xpusim prints to.

On a terminal rich picks the width; elsewhere (pipes, files, CI logs) the width is made
large so that tables are never wrapped or truncated, and colour is off.
"""

from __future__ import annotations

import sys

from rich.console import Console

_WIDE = 10_000


def stdout_console() -> Console:
    """The console for results: sized by the terminal, or wide and colourless when piped."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(width=_WIDE, no_color=True, highlight=False, soft_wrap=False,
                   force_terminal=False)


def stderr_console() -> Console:
    """The console for errors and progress: sized by the terminal, or wide and colourless when
    redirected."""
    if sys.stderr.isatty():
        return Console(stderr=True, highlight=False)
    return Console(stderr=True, width=_WIDE, no_color=True, highlight=False, soft_wrap=True)
