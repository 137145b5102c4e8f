"""Request traces: one request per row, its arrival time and its prompt and output lengths.

Two formats, chosen by the file's suffix:

- **CSV** (``.csv``): a header row naming the columns, then one row per request. The columns
  ``arrival_s``, ``prompt_tokens`` and ``output_tokens`` are required, in any order; other
  columns (a request id, a tenant...) are ignored; a column named twice is refused (which
  one would count?). Fields are read with the csv module's quoting rules, so a quoted field
  may hold commas or line breaks. Blank lines and lines starting with ``#`` are skipped, and
  a UTF-8 byte-order mark (as spreadsheet programs write) is dropped.
- **JSON Lines** (``.jsonl``): one JSON object per line with the keys ``arrival_s``,
  ``prompt_tokens`` and ``output_tokens`` (other keys ignored). Blank lines are skipped.
  An optional ``hash_ids`` key (Mooncake's traces carry it) lists one id per block of the
  prompt (``arrivals.hash_block_tokens`` tokens each); equal ids mean an identical prefix,
  which the prefix cache reuses (:mod:`~simulator.engine.serving.prefixes`). Mooncake's rows
  as published (``timestamp`` in milliseconds, ``input_length``, ``output_length``,
  ``hash_ids``) are read as they are: a row without ``arrival_s`` but with ``timestamp``
  is one of them.

``arrival_s`` is seconds from the start of the run (a finite number >= 0) and rows must be in
arrival order (equal times allowed); the token counts are whole numbers written in ASCII
digits, from 1 to :data:`~simulator.profiles.numbers.MAX_SEQUENCE_TOKENS`. A trace holds at
most :data:`~simulator.profiles.numbers.MAX_REQUESTS` rows and :data:`MAX_TRACE_BYTES` bytes,
the limits of a serving run. A malformed row raises :class:`~simulator.errors.InputError`
naming the file and line (``FILE:LINE``) and the field, e.g. ``traces/chat.csv:7:
prompt_tokens: '12.5' is not a positive integer``; the message quotes at most the offending
value (shortened), never the rest of the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import InputError
from simulator.profiles.input_files import read_bounded_text
from simulator.profiles.numbers import MAX_REQUESTS, MAX_SEQUENCE_TOKENS

FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")  # and hash_ids
SUFFIXES = (".csv", ".jsonl")
MAX_TRACE_BYTES = 256 << 20  # 256 MiB: MAX_REQUESTS rows of ~100 bytes, with room to spare
_SHOWN = 24  # characters of an offending value a message quotes


def _shown(value: Any) -> str:
    """An offending value as a message quotes it: repr, cut to a few characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


@dataclass(frozen=True)
class Trace:
    """The rows of a trace file as arrays, in arrival order."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: list[list[int]] | None = None  # per row (JSONL ``hash_ids``); None: none given


_MAX_HASH_ID = (1 << 62) - 1  # ids stay int64 when a block's key is made of them


class _Rows:
    """Collects validated rows; each check names the file, line and field."""

    def __init__(self, path: str):
        self.path = path
        self.times: list[float] = []
        self.prompts: list[int] = []
        self.outputs: list[int] = []
        self.hashes: list[list[int]] = []
        self.any_hashes = False

    def error(self, line: int, field: str | None, message: str) -> InputError:
        """An input error located at ``line`` of the trace file and ``field``."""
        return InputError(message, file=f"{self.path}:{line}", path=field)

    def time(self, line: int, value: Any) -> float:
        """An arrival time in seconds: a finite number, never a boolean."""
        if isinstance(value, bool) or not isinstance(value, int | float | str) or (
                isinstance(value, str) and not value.isascii()):
            raise self.error(line, "arrival_s", f"{_shown(value)} is not a number of seconds")
        try:
            t = float(value)
        except (TypeError, ValueError, OverflowError):
            raise self.error(line, "arrival_s",
                             f"{_shown(value)} is not a number of seconds") from None
        if not math.isfinite(t) or t < 0:
            raise self.error(line, "arrival_s", f"{_shown(value)} must be a finite time >= 0")
        if self.times and t < self.times[-1]:
            raise self.error(line, "arrival_s", f"{t!r} is earlier than the previous row's "
                                                f"{self.times[-1]!r}: rows must be in arrival "
                                                f"order")
        return t

    def tokens(self, line: int, field: str, value: Any) -> int:
        """A token count: a whole number of at least one, in ASCII digits (``str.isdigit``
        also accepts '²' and other scripts' digits, which ``int`` then refuses)."""
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            digits = value.strip()
            n = int(digits) if len(digits) <= 20 else MAX_SEQUENCE_TOKENS + 1
        if n is None or n <= 0:
            raise self.error(line, field, f"{_shown(value)} is not a positive integer")
        if n > MAX_SEQUENCE_TOKENS:
            raise self.error(line, field, f"{_shown(value)} tokens is more than a request may "
                                          f"hold ({MAX_SEQUENCE_TOKENS:,})")
        return n

    def add(self, line: int, row: dict[str, Any]) -> None:
        """Check one row's fields and keep its arrival time and lengths."""
        self._room(line)
        for field in FIELDS:
            if row.get(field) in (None, ""):
                raise self.error(line, field, "missing value")
        self._keep(line, self.time(line, row["arrival_s"]),
                   self.tokens(line, "prompt_tokens", row["prompt_tokens"]),
                   self.tokens(line, "output_tokens", row["output_tokens"]), row)

    def add_mooncake(self, line: int, row: dict[str, Any]) -> None:
        """A row of a Mooncake trace as published: ``timestamp`` in milliseconds from the
        start, ``input_length``, ``output_length`` and ``hash_ids`` (FAST '25 release)."""
        self._room(line)
        for field in MOONCAKE_FIELDS:
            if row.get(field) in (None, ""):
                raise self.error(line, field, "missing value")
        ms = row["timestamp"]
        if isinstance(ms, bool) or not isinstance(ms, int | float):
            raise self.error(line, "timestamp", f"{_shown(ms)} is not a number of milliseconds")
        try:
            t = self.time(line, ms / 1000)
        except InputError:
            raise self.error(line, "timestamp", f"{_shown(ms)} must be a finite time >= 0 in "
                                                f"arrival order") from None
        self._keep(line, t, self.tokens(line, "input_length", row["input_length"]),
                   self.tokens(line, "output_length", row["output_length"]), row)

    def _room(self, line: int) -> None:
        """Refuse a row past the most a run takes."""
        if len(self.times) >= MAX_REQUESTS:
            raise self.error(line, None, f"more than {MAX_REQUESTS:,} requests; a serving run "
                                         f"simulates at most that many (cut the trace)")

    def _keep(self, line: int, t: float, prompt: int, output: int,
              row: dict[str, Any]) -> None:
        """Keep a checked row (and its block hashes, if it has them)."""
        self.times.append(t)
        self.prompts.append(prompt)
        self.outputs.append(output)
        ids = row.get("hash_ids")
        self.hashes.append(self.hash_ids(line, ids) if ids is not None else [])
        self.any_hashes = self.any_hashes or ids is not None

    def hash_ids(self, line: int, value: Any) -> list[int]:
        """A row's block hashes: a list of whole numbers from 0."""
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_HASH_ID
                for v in value):
            raise self.error(line, "hash_ids", f"{_shown(value)} is not a list of block ids "
                                               f"(whole numbers >= 0)")
        return value

    def trace(self) -> Trace:
        """The rows kept so far as a :class:`Trace` (refused when there are none)."""
        if not self.times:
            raise InputError("the trace has no requests", file=self.path)
        return Trace(np.asarray(self.times, dtype=float),
                     np.asarray(self.prompts, dtype=np.int64),
                     np.asarray(self.outputs, dtype=np.int64),
                     self.hashes if self.any_hashes else None)


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the row, its fields) for each row that is not blank or a comment."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    for values in reader:
        first, line = line, reader.line_num + 1  # a quoted line break spans several lines
        if not values or not any(v.strip() for v in values):
            continue
        if values[0].lstrip().startswith("#"):
            continue
        yield first, values


def _read_csv(text: str, rows: _Rows) -> None:
    records = _csv_rows(text)
    try:
        header_line, header = next(records)
    except StopIteration:
        raise InputError("the trace is empty: expected a header row "
                         f"({','.join(FIELDS)}) and one row per request", file=rows.path) from None
    names = [name.strip() for name in header]
    for name in FIELDS:
        if names.count(name) > 1:
            raise rows.error(header_line, name, f"the header names column {name!r} "
                                                f"{names.count(name)} times; name it once")
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise rows.error(header_line, missing[0],
                         f"the header has no column {missing[0]!r} (required: "
                         f"{', '.join(FIELDS)}, in any order)")
    index = {f: names.index(f) for f in FIELDS}
    for number, values in records:
        row = {f: values[j].strip() if j < len(values) else None for f, j in index.items()}
        rows.add(number, row)


class _DuplicateKey(ValueError):
    """A JSON object that names a key twice (json keeps the last one silently)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _read_jsonl(text: str, rows: _Rows) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise rows.error(number, None, f"not valid JSON ({exc.msg} at column "
                                           f"{exc.colno})") from None
        except _DuplicateKey as exc:
            raise rows.error(number, exc.key, "the key is given twice; give it once") from None
        except (ValueError, RecursionError):  # 5,000-digit numbers, 100,000 nested brackets
            raise rows.error(number, None, "a value JSON cannot convert (a number of more "
                                           "than 4,300 digits, or nesting too deep)") from None
        if not isinstance(row, dict):
            raise rows.error(number, None, f"expected a JSON object with keys "
                                           f"{', '.join(FIELDS)}, got {type(row).__name__}")
        if "arrival_s" not in row and "timestamp" in row:
            rows.add_mooncake(number, row)
        else:
            rows.add(number, row)


def read_trace(path: str | Path) -> Trace:
    """Read and check a trace file (see the module docstring for the format)."""
    path = Path(path)
    shown = str(path)
    if path.suffix not in SUFFIXES:
        suffix = repr(path.suffix) if path.suffix else "no suffix"
        raise InputError(f"a trace file is chosen by its suffix, and this one has {suffix}: "
                         f"name it .csv (header row arrival_s,prompt_tokens,output_tokens) or "
                         f".jsonl (one JSON object per line)", file=shown)
    text = read_bounded_text(path, shown, limit=MAX_TRACE_BYTES, expected="a trace file")
    rows = _Rows(shown)
    (_read_csv if path.suffix == ".csv" else _read_jsonl)(text, rows)
    return rows.trace()
