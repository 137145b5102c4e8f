"""The result table of a study on disk: CSV or JSON Lines, one row per line, appended safely.

Each row is written with one ``write`` call, then flushed and fsynced, so a finished point is
on disk before the next one starts. A kill can leave at most a partial last line (no
trailing newline); :func:`open_table` cuts it off before appending, so the file is always a
sequence of whole rows. Cells never contain newlines (see ``rows.one_line``), which is what
makes "a row is a line" true for CSV too.

This streaming table is the one file xpusim does not write with
:func:`simulator.report.files.write_atomic`: a sweep of hours must keep every finished row
if it is killed, and resume by appending to the same file, which an all-or-nothing rename
cannot do. Whole tables written at once (:func:`write_table`) are atomic.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from simulator.errors import InputError
from simulator.report.files import write_atomic
from simulator.studies.rows import STATUSES
from simulator.studies.table_lock import TableLock

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_TEXT = {"point", "status", "reason"}  # CSV columns never read back as numbers


def table_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from the file's extension; any other extension is an input error."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InputError(f"cannot tell the table format from {path.name!r}; name it .csv or "
                         f".jsonl (JSON Lines)") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _parse_cell(text: str) -> Any:
    """A CSV cell back to a number, bool or None where it reads as one."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def encode(row: dict[str, Any], columns: list[str], fmt: str) -> str:
    """One row as one line (newline included)."""
    if fmt == "jsonl":
        return json.dumps({c: _json_value(row.get(c)) for c in columns},
                          separators=(",", ":")) + "\n"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def drop_partial_line(path: Path) -> int:
    """Truncate ``path`` after its last newline; returns the bytes dropped (0: none)."""
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Scan back in blocks for the last newline.
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            block = handle.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
        return size - keep


def parse_row(line: str, fmt: str, header: list[str] | None) -> dict[str, Any] | None:
    """The row one line of a table holds, or None if the line is not a whole row (torn by a
    crash, cut short, edited by hand): such a point is run again on resume."""
    if fmt == "jsonl":
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(row, dict):
            return None
    else:
        cells = next(csv.reader([line]), None)
        if header is None or cells is None or len(cells) != len(header):
            return None
        row = {name: cell if name in _TEXT else _parse_cell(cell)
               for name, cell in zip(header, cells, strict=True)}
    point = row.get("point")
    if not isinstance(point, str) or not point or row.get("status") not in STATUSES:
        return None
    return row


def _scan(path: Path) -> tuple[list[str], list[dict[str, Any]], int]:
    """(the lines of whole rows, header included; their rows; how many lines were not)."""
    fmt = table_format(path)
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        lines = [line + "\n" for line in handle.read().split("\n") if line.strip()]
    kept: list[str] = []
    header = None
    if fmt == "csv" and lines:
        header = next(csv.reader([lines[0]]), None)
        kept.append(lines.pop(0))
    rows: list[dict[str, Any]] = []
    for line in lines:
        row = parse_row(line, fmt, header)
        if row is not None:
            kept.append(line)
            rows.append(row)
    return kept, rows, len(lines) - len(rows)


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The whole rows of a table file (CSV values parsed back into numbers); lines that are
    not whole rows are skipped."""
    yield from _scan(path)[1]


def read_header(path: Path) -> list[str] | None:
    """The column names of a CSV table (None if it is empty)."""
    with open(path, newline="") as handle:
        return next(csv.reader(handle), None)


class TableWriter:
    """Appends rows to ``path``; each :meth:`write` is durable when it returns.

    Deliberately not atomic (see the module docstring): appending is what lets a killed sweep
    keep its rows and resume.
    """

    def __init__(self, path: Path, columns: list[str], *, lock: TableLock | None = None):
        self.path = path
        self.columns = columns
        self.lock = lock
        self.format = table_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO = open(path, "a", newline="")  # noqa: SIM115 (closed in close())
        if self.format == "csv" and self._handle.tell() == 0:
            self._append(encode(dict(zip(columns, columns, strict=True)), columns, "csv"))

    def _append(self, line: str) -> None:
        self._handle.write(line)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line and make it durable before returning."""
        self._append(encode(row, self.columns, self.format))

    def close(self) -> None:
        """Close the file (the rows written are already on disk) and free its lock."""
        self._handle.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(path: Path, columns: list[str],
               resume: bool) -> tuple[TableWriter, list[dict], int]:
    """Open ``path`` for appending: (writer, rows already there, lines dropped).

    The writer holds the table's lock (:mod:`simulator.studies.table_lock`) until it is
    closed, so no other sweep appends meanwhile. Without ``resume`` an existing non-empty
    file is an error (nothing is overwritten). With it, a CSV header must match, and lines
    that are not whole rows (a partial last line, a row cut short) are removed, so their
    points run again.
    """
    table_format(path)
    lock = TableLock(path)
    try:
        existing, dropped = _existing_rows(path, columns, resume)
        return TableWriter(path, columns, lock=lock), existing, dropped
    except BaseException:
        lock.release()
        raise


def _existing_rows(path: Path, columns: list[str],
                   resume: bool) -> tuple[list[dict[str, Any]], int]:
    existing: list[dict[str, Any]] = []
    dropped = 0
    if path.exists() and path.stat().st_size > 0:
        if not resume:
            raise InputError(f"{path} already exists: pass --resume to continue that sweep, "
                             f"or choose another --out", file=str(path))
        drop_partial_line(path)
        if table_format(path) == "csv":
            header = read_header(path)
            if header is not None and header != columns:
                raise InputError(f"its columns differ from this sweep's ({len(header)} vs "
                                 f"{len(columns)}: was it written by another sweep?); resume "
                                 f"with the same scenario and axes, or choose another --out",
                                 file=str(path))
        kept, existing, dropped = _scan(path)
        if dropped:
            write_atomic(path, "".join(kept))
    return existing, dropped


def write_table(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Write a whole (small) table at once, e.g. a summary or a plan's evaluated points;
    replaces the file atomically, so a reader never sees half of it."""
    fmt = table_format(path)
    lines = [encode(dict(zip(columns, columns, strict=True)), columns, "csv")] \
        if fmt == "csv" else []
    lines += [encode(row, columns, fmt) for row in rows]
    write_atomic(path, "".join(lines))
