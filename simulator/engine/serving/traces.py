"""Request traces: one request per row, its arrival time and its prompt and output lengths.

Two formats, chosen by the file's suffix:

- **CSV** (``.csv``): a header row naming the columns, then one row per request. The columns
  ``arrival_s``, ``prompt_tokens`` and ``output_tokens`` are required, in any order; other
  columns (a request id, a tenant...) are ignored. Blank lines and lines starting with ``#``
  are skipped.
- **JSON Lines** (``.jsonl``): one JSON object per line with the keys ``arrival_s``,
  ``prompt_tokens`` and ``output_tokens`` (other keys ignored). Blank lines are skipped.

``arrival_s`` is seconds from the start of the run (a finite number >= 0) and rows must be in
arrival order (equal times allowed); the token counts are positive integers. A malformed row
raises :class:`~simulator.errors.InputError` naming the file and line (``FILE:LINE``) and the
field, e.g. ``traces/chat.csv:7: prompt_tokens: '12.5' is not a positive integer``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import InputError

FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")
SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class Trace:
    """The rows of a trace file as arrays, in arrival order."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray


class _Rows:
    """Collects validated rows; each check names the file, line and field."""

    def __init__(self, path: str):
        self.path = path
        self.times: list[float] = []
        self.prompts: list[int] = []
        self.outputs: list[int] = []

    def error(self, line: int, field: str | None, message: str) -> InputError:
        """An input error located at ``line`` of the trace file and ``field``."""
        return InputError(message, file=f"{self.path}:{line}", path=field)

    def time(self, line: int, value: Any) -> float:
        """An arrival time in seconds: a finite number, never a boolean."""
        if isinstance(value, bool):
            raise self.error(line, "arrival_s", f"{value!r} is not a number of seconds")
        try:
            t = float(value)
        except (TypeError, ValueError):
            raise self.error(line, "arrival_s", f"{value!r} is not a number of seconds") from None
        if not math.isfinite(t) or t < 0:
            raise self.error(line, "arrival_s", f"{value!r} must be a finite time >= 0")
        if self.times and t < self.times[-1]:
            raise self.error(line, "arrival_s", f"{t!r} is earlier than the previous row's "
                                                f"{self.times[-1]!r}: rows must be in arrival "
                                                f"order")
        return t

    def tokens(self, line: int, field: str, value: Any) -> int:
        """A token count: a whole number of at least one."""
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and value.strip().isdigit():
            n = int(value.strip())
        if n is None or n <= 0:
            raise self.error(line, field, f"{value!r} is not a positive integer")
        return n

    def add(self, line: int, row: dict[str, Any]) -> None:
        """Check one row's fields and keep its arrival time and lengths."""
        for field in FIELDS:
            if row.get(field) in (None, ""):
                raise self.error(line, field, "missing value")
        self.times.append(self.time(line, row["arrival_s"]))
        self.prompts.append(self.tokens(line, "prompt_tokens", row["prompt_tokens"]))
        self.outputs.append(self.tokens(line, "output_tokens", row["output_tokens"]))

    def trace(self) -> Trace:
        """The rows kept so far as a :class:`Trace` (refused when there are none)."""
        if not self.times:
            raise InputError("the trace has no requests", file=self.path)
        return Trace(np.asarray(self.times, dtype=float),
                     np.asarray(self.prompts, dtype=np.int64),
                     np.asarray(self.outputs, dtype=np.int64))


def _read_csv(text: str, rows: _Rows) -> None:
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError("the trace is empty: expected a header row "
                         f"({','.join(FIELDS)}) and one row per request", file=rows.path)
    header_line, header = lines[0]
    names = [name.strip() for name in next(csv.reader([header]))]
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise rows.error(header_line, missing[0],
                         f"the header has no column {missing[0]!r} (it has "
                         f"{', '.join(repr(n) for n in names)}; required: {', '.join(FIELDS)})")
    index = {f: names.index(f) for f in FIELDS}
    for number, values in zip((i for i, _ in lines[1:]),
                              csv.reader(line for _, line in lines[1:]), strict=True):
        row = {f: values[j].strip() if j < len(values) else None for f, j in index.items()}
        rows.add(number, row)


def _read_jsonl(text: str, rows: _Rows) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise rows.error(number, None, f"not valid JSON ({exc.msg} at column "
                                           f"{exc.colno})") from None
        if not isinstance(row, dict):
            raise rows.error(number, None, f"expected a JSON object with keys "
                                           f"{', '.join(FIELDS)}, got {type(row).__name__}")
        rows.add(number, row)


def read_trace(path: str | Path) -> Trace:
    """Read and check a trace file (see the module docstring for the format)."""
    path = Path(path)
    shown = str(path)
    if path.suffix not in SUFFIXES:
        raise InputError(f"unknown trace format {path.suffix!r}; use one of "
                         f"{', '.join(SUFFIXES)}", file=shown)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such trace file", file=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the trace: {exc}", file=shown) from None
    rows = _Rows(shown)
    (_read_csv if path.suffix == ".csv" else _read_jsonl)(text, rows)
    return rows.trace()
