"""Writing output files so that a failed run never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED -->"
END = "<!-- END GENERATED -->"


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
