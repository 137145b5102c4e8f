"""Cells of the study tables (sweep, plan, sensitivity): one unit per column.

A column named ``..._s`` holds seconds. Its cells are plain numbers in seconds, unless one
of them is long enough (two minutes or more) to read better as '3.6 min' or '36.3 d': then
every cell of the column is written that way and the header drops its ``_s``, so that no
column mixes '4.024' with '3.6 min' under one unit. CSV and JSON keep plain SI numbers; only
the terminal is humanised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simulator.units import format_time

HUMANISE_FROM_S = 120.0  # a duration this long reads better in minutes, hours or days


def is_duration(column: str) -> bool:
    """Whether ``column`` holds seconds (``ttft_p99_s``; not a rate such as ``requests_per_s``)."""
    return column.endswith("_s") and not column.endswith("per_s")


def humanised(column: str, values: Iterable[Any]) -> bool:
    """Whether the durations of ``column`` are written humanised (one of them is long)."""
    return is_duration(column) and any(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= HUMANISE_FROM_S
        for v in values)


def header(column: str, human: bool) -> str:
    """The column's title: without its ``_s`` when its cells carry their own units."""
    return column[:-2] if human else column


def fmt(value: Any, column: str = "", human: bool = False) -> str:
    """One cell: 4 significant digits, blank for None, yes/no for booleans; a humanised
    duration ('12.5 ms', '3.6 min') when the column is humanised; large dollar amounts with
    thousands separators."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and human:
        return format_time(float(value))
    if isinstance(value, float):
        if column.startswith(("cost_usd", "usd_")) and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def column_cells(column: str, values: list[Any]) -> tuple[str, list[str]]:
    """A column's header and cells, all in one unit."""
    human = humanised(column, values)
    return header(column, human), [fmt(v, column, human) for v in values]


def labelled(column: str, value: Any) -> str:
    """'name = value' for one figure in a line of text, in the unit its name states."""
    human = humanised(column, [value])
    return f"{header(column, human)} = {fmt(value, column, human)}"
