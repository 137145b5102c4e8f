"""What ``xpusim roadmap --out DIR`` writes: ``roadmap.json``, ``roadmap.csv`` (one row per
month), the fleet-over-time, cost-stack and SLO-attainment plots, and ``report.html``.

Everything is built from the plan's JSON-ready mapping (``studies.roadmap_result``), so the
files and ``--format json`` cannot disagree. Plots use the Agg helpers of :mod:`.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import StrMethodFormatter

from simulator.report.html import Section, figure, notes, page, table
from simulator.report.json_text import strict_json
from simulator.report.outputs import csv_text, write_files
from simulator.report.plots import PALETTE, _figure, _png

DEFAULT_PERCENTILE = 99.0  # the SLO's percentile where the answer names none
CSV_FIELDS = ("month", "label", "peak_per_s", "required_per_s", "capacity_per_s",
              "utilization", "day_utilization", "trough_utilization", "headroom",
              "owned_accelerators", "total_accelerators", "owned_cost_usd", "cost_usd",
              "energy_kwh", "carbon_kg", "shortfall_per_s", "short_hours_share",
              "slo_share_at_peak", "slo_attainment_fleet")


def attainment_keys(data: Mapping[str, Any]) -> list[str]:
    """The options and owned fleets with a simulated attainment in some month, in order."""
    keys: list[str] = []
    for p in data["periods"]:
        keys += [k for k in p["slo_attainment"] if k not in keys]
    return keys


def roadmap_csv(data: Mapping[str, Any]) -> str:
    """One row per month: the figures of :data:`CSV_FIELDS`, then the purchase units, cost
    and rented block-hours of each option (``units_<id>``, ``cost_usd_<id>``,
    ``cloud_block_hours_<id>``, the last for cloud options) and the simulated attainment of
    each option or owned fleet in service (``slo_attainment_<key>``, empty where none)."""
    ids = [o["id"] for o in data["options"] if o["serves"]]
    cloud = [o["id"] for o in data["options"] if o["serves"] and o["mode"] == "cloud"]
    keys = attainment_keys(data)
    header = [*CSV_FIELDS, *(f"units_{i}" for i in ids), *(f"cost_usd_{i}" for i in ids),
              *(f"cloud_block_hours_{i}" for i in cloud),
              *(f"slo_attainment_{k}" for k in keys)]
    rows = [[p[f] for f in CSV_FIELDS] + [p["units"].get(i, 0) for i in ids]
            + [p["cost_by_option_usd"].get(i, 0.0) for i in ids]
            + [p["cloud_block_hours"].get(i, 0.0) for i in cloud]
            + [p["slo_attainment"].get(k) for k in keys] for p in data["periods"]]
    return csv_text(header, rows)


def _stacked_bars(ax: Any, data: Mapping[str, Any], owned: str, by_option: str) -> Any:
    """One bar per month, labelled below, stacked from the owned fleet's ``owned`` figure
    and each serving option's entry of ``by_option`` (0 where it has none that month);
    return the months' x positions."""
    periods = data["periods"]
    x = np.arange(len(periods))
    bottom = np.zeros(len(periods))
    stacks = [("owned", [p[owned] for p in periods])]
    stacks += [(o["id"], [p[by_option].get(o["id"], 0) for p in periods])
               for o in data["options"] if o["serves"]]
    for i, (name, values) in enumerate(stacks):
        ax.bar(x, values, 0.7, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=name)
        bottom += np.asarray(values, dtype=float)
    return _month_ticks(ax, periods)


def _month_ticks(ax: Any, periods: Sequence[Mapping[str, Any]]) -> Any:
    """Label the x axis with the months; return their positions."""
    x = np.arange(len(periods))
    ax.set_xticks(x)
    ax.set_xticklabels([p["label"] for p in periods], rotation=45, ha="right")
    return x


def fleet_plot(data: Mapping[str, Any]) -> bytes:
    """Stacked accelerators per option (and owned) by month, with peak demand and capacity
    in requests/s on a second axis."""
    periods = data["periods"]
    fig = _figure((10.0, 5.0))
    ax = fig.subplots()
    x = _stacked_bars(ax, data, "owned_accelerators", "accelerators")
    ax.set_ylabel("accelerators in service")
    rate = ax.twinx()
    rate.plot(x, [p["peak_per_s"] for p in periods], color="#000000", marker="o",
              label="peak demand (req/s)")
    rate.plot(x, [p["capacity_per_s"] for p in periods], color="#777777", linestyle="--",
              label="capacity within the SLO (req/s)")
    rate.set_ylabel("requests/s")
    rate.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    more = rate.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left",
              bbox_to_anchor=(1.1, 1.0), fontsize="small")
    ax.set_title("Fleet over time")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def cost_plot(data: Mapping[str, Any]) -> bytes:
    """The monthly cost stacked by option (and owned), in USD."""
    fig = _figure((10.0, 4.5))
    ax = fig.subplots()
    _stacked_bars(ax, data, "owned_cost_usd", "cost_by_option_usd")
    ax.set_ylabel("cost per month (USD)")
    ax.set_title("Cost stack")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def slo_plot(data: Mapping[str, Any]) -> bytes:
    """Each month's SLO attainment at its peak: the share of requests meeting every target,
    simulated on the plan's fleet (bars; markers per option), and the share of the peak the
    capacity carries (a line)."""
    periods = data["periods"]
    x = np.arange(len(periods))
    fig = _figure((10.0, 3.8))
    ax = fig.subplots()
    capacity = [p["slo_share_at_peak"] for p in periods]
    target = (data["slo_percentile"] or DEFAULT_PERCENTILE) / 100
    if data["verified"]:
        fleet = [p["slo_attainment_fleet"] for p in periods]
        shown = [np.nan if f is None else f for f in fleet]
        ax.bar(x, shown, 0.7, color=[PALETTE[3] if f is not None and f < target
                                     else PALETTE[2] for f in fleet],
               label="requests meeting the SLO (simulated)")
        for i, key in enumerate(attainment_keys(data)):
            ax.plot(x, [p["slo_attainment"].get(key, np.nan) for p in periods], marker="o",
                    linestyle="none", color=PALETTE[(4 + i) % len(PALETTE)], label=key)
    ax.plot(x, capacity, color="#333333", linestyle="--", linewidth=1,
            label="peak carried by capacity")
    ax.axhline(target, color="#999999", linestyle=":", linewidth=1,
               label=f"the SLO's percentile ({target:.0%})")
    ax.set_ylim(0, 1.05)
    _month_ticks(ax, periods)
    ax.set_ylabel("share")
    ax.set_title("SLO attainment at each month's peak")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return _png(fig)


def period_cells(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The month-by-month table as text (the terminal and the HTML page); the day's
    utilisation with a daily profile, the simulated attainment when verified."""
    daily, verified = data["day_shape"] is not None, data["verified"]
    header = ["month", "peak req/s", "fleet at the peak (units; owned: accelerators)",
              "accelerators", "capacity req/s", "utilisation",
              *(["day / trough"] if daily else []), "headroom",
              *(["SLO met"] if verified else []), "cost USD"]
    rows = []
    for p in data["periods"]:
        met = p["slo_attainment_fleet"]
        rows.append([p["label"], f"{p['peak_per_s']:,.1f}", fleet_text(data, p),
                     f"{p['total_accelerators']:,}", f"{p['capacity_per_s']:,.1f}",
                     f"{p['utilization']:.0%}",
                     *([f"{p['day_utilization']:.0%} / {p['trough_utilization']:.0%}"]
                       if daily else []),
                     f"{p['headroom']:+.0%}"
                     + (f" (short {p['shortfall_per_s']:,.1f}/s)" if p["shortfall_per_s"]
                        else ""),
                     *([f"{met:.1%}" if met is not None else "-"] if verified else []),
                     f"{p['cost_usd']:,.0f}"])
    return header, rows


def fleet_text(data: Mapping[str, Any], period: Mapping[str, Any]) -> str:
    """A month's fleet in words: the owned accelerators and each option's units."""
    parts = []
    if period["owned_accelerators"]:
        parts.append(f"owned {period['owned_accelerators']:,}")
    for o in data["options"]:
        n = period["units"].get(o["id"], 0)
        hours = period["cloud_block_hours"].get(o["id"])
        if n and hours is not None and data["day_shape"] is not None:
            unit_hours = hours * o["block_units"]
            parts.append(f"{o['id']} {n:,} ({unit_hours:,.0f} unit-hours)")
        elif n:
            parts.append(f"{o['id']} {n:,}")
    return ", ".join(parts) or "-"


def summary_lines(data: Mapping[str, Any]) -> list[str]:
    """The totals, orders and sensitivity in sentences."""
    lines = [f"total cost of ownership over {data['horizon_months']} months: "
             f"{data['total_cost_usd']:,.0f} USD (new hardware "
             f"{data['new_hardware_cost_usd']:,.0f}, of which lease terms past the horizon "
             f"{data['lease_terms_after_horizon_usd']:,.0f}; owned fleet "
             f"{data['owned_cost_usd']:,.0f}); energy {data['total_energy_kwh']:,.0f} kWh, "
             f"carbon {data['total_carbon_kg'] / 1e3:,.1f} t"]
    for order in data["orders"]:
        option = next(o for o in data["options"] if o["id"] == order["option"])
        n = order["blocks"] * int(option["block_units"])
        lines.append(f"order {n:,} {unit_words(option, n)} of {order['option']} by "
                     f"{order['order_by']} for {order['arrival']}")
    if data["months_short"]:
        lines.append(f"the peak exceeds what can be had in {', '.join(data['months_short'])}")
    return lines + slo_lines(data)


def slo_lines(data: Mapping[str, Any]) -> list[str]:
    """Where the simulated share of requests meeting the SLO falls below its percentile
    (the question's "where do we miss the SLO?"), or that it never does."""
    if not data["verified"]:
        return []
    target = (data["slo_percentile"] or DEFAULT_PERCENTILE) / 100
    measured = [p for p in data["periods"] if p["slo_attainment_fleet"] is not None]
    missed = [p for p in measured if p["slo_attainment_fleet"] < target]
    if not measured:
        return []
    if not missed:
        return [f"SLO: at every month's peak at least {target:.0%} of requests meet every "
                f"target (simulated on the plan's fleet)"]
    return ["SLO missed at the peak (simulated share of requests meeting every target): "
            + ", ".join(f"{p['label']} {p['slo_attainment_fleet']:.1%}" for p in missed)]


def unit_words(option: Mapping[str, Any], count: int) -> str:
    """An option's purchase unit, singular for one."""
    return option["unit_name"] if count == 1 else option["unit_plural"]


def sensitivity_cells(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The plan re-solved at other growth rates."""
    header = ["growth", "final peak req/s", "total cost USD", "vs plan", "final units",
              "months short"]
    base = data["sensitivity"][0]["total_cost_usd"]
    rows = [[f"{s['growth_multiplier']:g}x", f"{s['final_peak_per_s']:,.1f}",
             f"{s['total_cost_usd']:,.0f}", f"{s['total_cost_usd'] / base - 1:+.1%}",
             ", ".join(f"{k} {v}" for k, v in s["final_units"].items() if v) or "-",
             str(s["months_short"])] for s in data["sensitivity"]]
    return header, rows


def roadmap_page(data: Mapping[str, Any], figures: Sequence[tuple[str, bytes, str]]) -> str:
    """The whole report: the plan, the totals and orders, the sensitivity, the figures."""
    header, rows = period_cells(data)
    s_header, s_rows = sensitivity_cells(data)
    body = table(header, rows) + notes(summary_lines(data))
    sections = [Section("Month by month", body),
                Section("Sensitivity to demand growth", table(s_header, s_rows)),
                *(Section(h, figure(png, caption)) for h, png, caption in figures),
                Section("Options and assumptions", notes(data["notes"]))]
    return page(f"Roadmap: {data['name']}",
                f"from the scenario '{data['scenario']}', "
                f"{data['horizon_months']} months, headroom {data['headroom']:.0%}", sections)


def write_roadmap_outputs(directory: Path, data: Mapping[str, Any]) -> list[Path]:
    """``roadmap.json``, ``roadmap.csv``, the three plots and ``report.html`` in
    ``directory``."""
    figures = [("Fleet over time", fleet_plot(data), "accelerators in service and capacity"),
               ("Cost stack", cost_plot(data), "monthly cost by option"),
               ("SLO attainment", slo_plot(data), "share of the peak within the SLO")]
    files: dict[str, str | bytes] = {
        "roadmap.json": strict_json(data), "roadmap.csv": roadmap_csv(data),
        "fleet.png": figures[0][1], "cost.png": figures[1][1], "slo.png": figures[2][1],
        "report.html": roadmap_page(data, figures)}
    return write_files(directory, files)
