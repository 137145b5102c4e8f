"""The rich consoles xpusim prints to, and the one rule for user text: it is printed as text.

On a terminal rich picks the width; elsewhere (pipes, files, CI logs) the width is made
large so that tables are never wrapped or truncated, and colour is off.

Names, descriptions, ids and messages can come from a scenario or ``--set``: a name such as
``[/bold]`` must not be read as rich markup (it raises), and ``\\e]0;X\\a`` must not retitle
the terminal. So these consoles never parse markup (styles are given as ``style=`` or
:class:`rich.text.Text`), and every string they render passes :func:`printable` first.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

_WIDE = 10_000
# C0 controls but tab and newline, DEL, C1 controls (\x9b is a one-byte CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` with terminal control characters shown as ``\\xNN`` (ESC, BEL, CR, ...);
    ``one_line`` also shows newlines as ``\\n`` (an error is one line, whatever it quotes)."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return shown.replace("\n", "\\n") if one_line else shown


class TextConsole(Console):
    """A console that prints strings as text: no markup, no control characters."""

    def __init__(self, **kwargs: Any):
        super().__init__(markup=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """Every string a table, a title or ``print`` shows comes through here."""
        kwargs["markup"] = False
        return super().render_str(printable(text), **kwargs)


def stdout_console() -> Console:
    """The console for results: sized by the terminal, or wide and colourless when piped."""
    if sys.stdout.isatty():
        return TextConsole(highlight=False)
    return TextConsole(width=_WIDE, no_color=True, highlight=False, soft_wrap=False,
                       force_terminal=False)


def stderr_console() -> Console:
    """The console for errors and progress: sized by the terminal, or wide and colourless when
    redirected."""
    if sys.stderr.isatty():
        return TextConsole(stderr=True, highlight=False)
    return TextConsole(stderr=True, width=_WIDE, no_color=True, highlight=False,
                       soft_wrap=True)
