"""Writing output files so that a failed run never leaves a half-written one behind.

Every file xpusim writes whole (results, CSVs, plots, HTML, tables, generated Markdown) goes
through :func:`write_atomic`; the one exception is a sweep's streaming table, which is
appended to row by row so that a killed sweep can resume (:mod:`simulator.studies.table`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED -->"
END = "<!-- END GENERATED -->"

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``content`` to ``path`` all at once: a reader sees the old file or the new one.

    The data go to a temporary file beside ``path`` that is then renamed over it. The
    temporary file is created like ``open(path, "w")`` creates a file (mode 0666 less the
    process umask, usually 0644), not with :func:`tempfile.mkstemp`'s private 0600, so the
    output has the same permissions as any other file the user writes. Text is UTF-8 with
    ``\\n`` line ends on every platform.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, uniquely named hidden file next to ``path``; the kernel applies the umask."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _NEW_FILE, 0o666), tmp
        except FileExistsError:  # a name already taken (vanishingly rare): draw another
            continue


def write_markdown_section(path: Path, generated: str) -> None:
    """Replace the generated block of a Markdown page, keeping the hand-written prose.

    A page without markers gets the block appended; a missing page is created.
    """
    block = f"{BEGIN}\n\n{generated.strip()}\n\n{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    write_atomic(path, text)
