"""One writer per study table: an exclusive lock held while a sweep appends to its ``--out``.

Two ``sweep --resume`` runs on the same table would each read the rows done so far and then
both run, and append, every remaining point. The lock is an ``flock`` on a small file beside
the table (``.NAME.lock``, holding the owner's pid so the refusal can say who has it). The
kernel drops an ``flock`` when its holder exits, however it exits, so a killed sweep never
leaves a stale lock; the file itself stays (removing it would race with the next taker).
Where ``fcntl`` does not exist (Windows) tables are not locked.
"""

from __future__ import annotations

import os
from pathlib import Path

from simulator.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]


def lock_path(table: Path) -> Path:
    """The lock file of ``table``: hidden, beside it."""
    return table.with_name(f".{table.name}.lock")


class TableLock:
    """An exclusive, non-blocking lock on a table; :meth:`release` (or exit) frees it."""

    def __init__(self, table: Path):
        self.path = lock_path(table)
        self._fd: int | None = None
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise InputError(f"another sweep{who} is writing this table; wait for it to "
                             f"finish, or choose another --out", file=str(table)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Free the lock (closing the descriptor drops the ``flock``); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote into the lock file, if readable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
