"""Reading a user's input file as text, refusing what could block, exhaust memory or mislead.

Scenarios, profiles and request traces all name local files. Before any of them is parsed it
must be a regular file (a FIFO would block, ``/dev/zero`` never ends), reachable (a symbolic
link loop is not "file not found"), within a size limit that fits its kind, and UTF-8 text (a
byte-order mark, as some spreadsheet programs write, is accepted and dropped). Every refusal
is one :class:`~simulator.errors.InputError` naming the file; none quotes the file's content.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path

from simulator.errors import InputError


def not_a_readable_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file (None when it is a regular file): the
    checks of :func:`read_bounded_text` that need no reading, for validators that only
    resolve a path and read it later."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop: the path never reaches a file"
        return f"cannot read file: {exc.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a pipe, socket or device)"
    return None


def read_bounded_text(path: Path, name: str, *, limit: int, expected: str) -> str:
    """The text of ``path`` (shown as ``name``), at most ``limit`` bytes; ``expected`` says
    what kind of file was wanted ("a YAML file", "a trace file") in the messages."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError("file not found", file=name) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError("symbolic link loop: the path never reaches a file",
                             file=name) from None
        raise InputError(f"cannot read file: {exc.strerror}", file=name) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"is a directory, expected {expected}", file=name)
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"is not a regular file (a pipe, socket or device); expected "
                         f"{expected}", file=name)
    if info.st_size > limit:
        raise InputError(f"is {info.st_size:,} bytes; {expected} is limited to {limit:,} "
                         f"bytes", file=name)
    try:
        with open(path, "rb") as handle:  # (files in /proc say 0 bytes: read to the limit)
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", file=name) from None
    if len(raw) > limit:
        raise InputError(f"is more than {limit:,} bytes; {expected} is limited to {limit:,} "
                         f"bytes", file=name)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
                         f"expected {expected}", file=name) from None
