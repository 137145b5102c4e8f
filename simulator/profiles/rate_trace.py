"""A trace of arrival rates (`workload.arrivals.rate_trace`): a CSV of time and rate.

This is what a monitoring system exports: one row per interval, the requests per second
measured over it. The columns ``time_s`` and ``rate_per_s`` are required, in any order (other
columns are ignored; a column named twice is refused). Blank lines and lines starting with
``#`` are skipped; a UTF-8 byte-order mark is dropped. Times are finite, strictly
increasing seconds on any origin (an epoch timestamp is fine): they are shifted so the first
row is at timeline time 0. Each row's rate holds from its time to the next row's, and the
last row's to the end of the run, so the integral over any window is exact. Rates are finite
and >= 0, and not all 0.

A trace is read once per file and kept (scenarios of a sweep share it); a bad row is one
:class:`~simulator.errors.InputError` naming ``FILE:LINE`` and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from simulator.errors import InputError
from simulator.profiles.input_files import read_bounded_text
from simulator.profiles.numbers import MAX_REAL

COLUMNS = ("time_s", "rate_per_s")
MAX_RATE_ROWS = 1_000_000  # a year of 30-second samples
MAX_RATE_TRACE_BYTES = 64 << 20  # 64 MiB: MAX_RATE_ROWS rows of ~60 bytes


@dataclass(frozen=True)
class RateTrace:
    """A rate trace's rows: times from 0, strictly increasing, and the rate from each."""

    time_s: np.ndarray
    rate_per_s: np.ndarray

    def mean_rate(self) -> float | None:
        """The time-weighted mean rate over the trace's span (first to last row); None for a
        single row, which has no span."""
        if len(self.time_s) < 2:
            return None
        widths = np.diff(self.time_s)
        return float(np.dot(widths, self.rate_per_s[:-1]) / (self.time_s[-1] - self.time_s[0]))


def _number(path: str, line: int, column: str, text: str | None) -> float:
    """A finite number from a CSV field, or an error naming the file, line and column."""
    where = f"{path}:{line}"
    if text is None or not text.strip():
        raise InputError("missing value", file=where, path=column)
    shown = text if len(text) <= 24 else text[:21] + "..."
    try:
        value = float(text) if text.strip().isascii() else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > MAX_REAL:
        raise InputError(f"{shown!r} is not a finite number", file=where, path=column)
    return value


def _header(path: str, reader: Iterator[list[str]]) -> tuple[int, int]:
    """The indices of the required columns in the first non-comment row."""
    for row in reader:
        if not row or row[0].lstrip().startswith("#"):
            continue
        names = [name.strip() for name in row]
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise InputError(f"the header lacks {', '.join(missing)}; a rate trace needs the "
                             f"columns {', '.join(COLUMNS)}", file=path)
        twice = [c for c in COLUMNS if names.count(c) > 1]
        if twice:
            raise InputError(f"column {twice[0]} is named twice", file=path)
        return names.index(COLUMNS[0]), names.index(COLUMNS[1])
    raise InputError("no header row: a rate trace needs the columns time_s, rate_per_s",
                     file=path)


def _rows(path: str, text: str) -> tuple[list[float], list[float]]:
    """The checked times and rates of every data row."""
    reader = csv.reader(io.StringIO(text))
    t_col, r_col = _header(path, reader)
    times: list[float] = []
    rates: list[float] = []
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(times) >= MAX_RATE_ROWS:
            raise InputError(f"more than {MAX_RATE_ROWS:,} rows", file=f"{path}:{line}")
        t = _number(path, line, COLUMNS[0], row[t_col] if t_col < len(row) else None)
        r = _number(path, line, COLUMNS[1], row[r_col] if r_col < len(row) else None)
        if times and t <= times[-1]:
            raise InputError(f"{t!r} is not after the previous row's {times[-1]!r}: times "
                             f"must increase", file=f"{path}:{line}", path=COLUMNS[0])
        if r < 0:
            raise InputError(f"{r!r} is negative: a rate is >= 0", file=f"{path}:{line}",
                             path=COLUMNS[1])
        times.append(t)
        rates.append(r)
    return times, rates


@lru_cache(maxsize=8)
def read_rate_trace(path: str) -> RateTrace:
    """The rate trace at ``path`` (an absolute path), its times shifted to start at 0."""
    text = read_bounded_text(Path(path), path, limit=MAX_RATE_TRACE_BYTES,
                             expected="a rate trace (CSV)")
    times, rates = _rows(path, text)
    if not times:
        raise InputError("no rows: a rate trace needs at least one time_s,rate_per_s row",
                         file=path)
    if max(rates) == 0:
        raise InputError("every rate is 0: no request would arrive", file=path)
    t = np.asarray(times, dtype=float)
    t -= t[0]
    return RateTrace(time_s=t, rate_per_s=np.asarray(rates, dtype=float))
