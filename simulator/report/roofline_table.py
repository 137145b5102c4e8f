"""The terminal table of a roofline view (``xpusim roofline``)."""

from __future__ import annotations

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from simulator.perf.roofline_view import RooflineView
from simulator.units import format_si, format_time

_STYLE = {"compute": "green", "memory": "yellow", "network": "magenta"}
_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("phase", "left"), ("operation", "left"), ("x", "right"), ("FLOPs", "right"),
    ("bytes", "right"), ("FLOP/B", "right"), ("bound", "left"), ("time", "right"),
    ("share", "right"))


def render_roofline(console: Console, view: RooflineView) -> None:
    """Print ``xpusim roofline``: one row per operation (FLOPs, bytes, intensity, bound, time
    and share of its phase), then the ridge point and the verdicts."""
    table = Table(title=view.title, title_justify="left")
    for name, justify in _COLUMNS:
        table.add_column(name, justify=justify, no_wrap=name == "operation")
    totals = {r.phase: view.total(r.phase) for r in view.rows}
    for row in view.rows:
        share = row.time_s / totals[row.phase] if totals[row.phase] else 0.0
        table.add_row(row.phase, row.name, str(row.count),
                      format_si(row.flops, "") if row.flops else "-",
                      format_si(row.bytes, "B"),
                      f"{row.intensity:,.1f}" if row.flops else "-",
                      Text(row.bound, style=_STYLE.get(row.bound, "")), format_time(row.time_s),
                      f"{share:.0%}")
    console.print(table)
    console.print(f"ridge point: {view.ridge_point:,.0f} FLOP/B (above it an op is "
                  f"compute-bound at peak)")
    for verdict in view.verdicts():
        console.print(verdict, markup=False)
