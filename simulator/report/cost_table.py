"""The terminal table of an autoscaled run's cost over time, for runs of hours: a day in
hourly bins reads at a glance (shorter runs show only the spread, in the Serving table)."""

from __future__ import annotations

from rich.table import Table

from simulator.results.autoscaling import AutoscalingMetrics
from simulator.units import format_time

LONG_RUN_S = 6 * 3600.0  # from six hours on, the bins get a table of their own


def cost_over_time_table(a: AutoscalingMetrics) -> Table | None:
    """One row per bin (replicas, tokens, cost, USD per million tokens, SLO attainment,
    misses during scale-ups), or None for a run shorter than :data:`LONG_RUN_S`."""
    bins = a.bins
    if not bins or bins[-1].end_s - bins[0].start_s < LONG_RUN_S:
        return None
    table = Table(title="Cost over time", title_justify="left")
    for name in ("from", "replicas", "tokens", "cost (USD)", "USD / M tokens",
                 "SLO attainment", "missed in scale-ups"):
        table.add_column(name, justify="left" if name == "from" else "right",
                         style="cyan" if name == "from" else None)
    for b in bins:
        per = b.usd_per_million_tokens
        table.add_row(format_time(b.start_s), f"{b.replicas:.2f}",
                      f"{b.prompt_tokens + b.output_tokens:,}", f"{b.cost_usd or 0.0:,.2f}",
                      "-" if per is None else f"{per:,.4g}",
                      "-" if b.slo_attainment is None else f"{b.slo_attainment:.1%}",
                      "-" if b.slo_missed_during_scale_up is None
                      else f"{b.slo_missed_during_scale_up:,}")
    return table
