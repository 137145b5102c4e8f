"""One self-contained HTML page: headline tables and the plots, embedded as data URIs.

The page references nothing outside itself (no scripts, fonts, stylesheets or images from
elsewhere; CSS inline; PNGs as ``data:image/png;base64``), so it opens offline, can be
mailed, and renders the same everywhere. Text is escaped; nothing here runs JavaScript.

Also here: :func:`format_value`, the one place that turns a metric and its unit into the
text of a table cell (used by the terminal table of ``xpusim compare`` as well).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.report.confidence_text import confidence_rows
from simulator.results import Result
from simulator.units import format_si, format_time

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1240px; padding: 0 1rem; color: #1b1b1b; background: #ffffff; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
p.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.3rem; }
ul.notes { color: #444; font-size: 0.9rem; }
.bad { color: #a33; }
"""


@dataclass(frozen=True)
class Section:
    """A heading and its already-escaped HTML body."""

    heading: str
    body: str


def figure(png: bytes, caption: str) -> str:
    """An embedded PNG with a caption."""
    data = base64.b64encode(png).decode("ascii")
    text = html.escape(caption)
    return (f'<figure><img alt="{text}" src="data:image/png;base64,{data}">'
            f"<figcaption>{text}</figcaption></figure>")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of text cells (escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def notes(items: Sequence[str]) -> str:
    """Notes and warnings as an escaped list ('' when there are none)."""
    if not items:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document."""
    parts = [f"<h2>{html.escape(s.heading)}</h2>{s.body}" for s in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(subtitle)}</p>"
            + "".join(parts) + "</body></html>\n")


# ---- values --------------------------------------------------------------------------------
def format_value(value: float | None, unit: str) -> str:
    """A metric as table text with its unit and sensible rounding ('-' when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        return format_time(value)
    if unit == "fraction":
        return f"{value:.1%}"
    if unit == "USD":
        if abs(value) >= 1000:
            return f"${value:,.0f}"
        return f"${value:,.3g}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "W":
        return format_si(value, "W")
    if unit == "J":
        return format_si(value, "J")
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.3g} {unit}"


def format_ratio(value: float | None) -> str:
    """A ratio to the baseline as '1.23x' ('-' when there is none)."""
    return "-" if value is None else f"{value:.2f}x"


# ---- the page of one run ---------------------------------------------------------------------
def headline_rows(result: Result) -> list[list[str]]:
    """The figures a reader looks for first, as (label, value) rows: a serving run's over
    its steady window (stated), with the whole run's throughput and cost next to them."""
    whole, result = result, result.steady_view()
    rows = [["accelerators", f"{result.accelerators:,} x {result.hardware}"],
            ["precision", result.precision],
            ["simulated time", format_time(whole.time_s)]]
    if whole.steady is not None and whole.inference is not None:
        s, w = whole.steady, whole.inference
        rows += [["steady window", f"{format_time(s.start_s)} to {format_time(s.end_s)}: "
                                   f"{s.basis}" if s.found else s.basis],
                 ["whole run", f"{w.output_tokens_per_s:,.0f} output tokens/s, "
                               f"{whole.cost_per_million_tokens_usd:,.4f} USD per million "
                               f"tokens, busy {whole.utilization.busy:.1%}"]]
    if result.training is not None:
        t = result.training
        rows += [["step time", format_time(t.step_time_s)],
                 ["throughput", format_value(t.tokens_per_s, "tokens/s")],
                 ["MFU / HFU", f"{t.mfu:.1%} / {t.hfu:.1%}"],
                 ["pipeline bubble", f"{t.bubble_fraction:.1%}"],
                 ["time to train (no failures)", format_time(t.time_to_train_s)],
                 ["wall time with failures", format_time(t.wall_time_s)],
                 ["goodput", f"{t.goodput:.1%}"],
                 ["interruptions (sampled)", f"{t.failures.sampled_interruptions:,}"]]
    if result.inference is not None:
        m = result.inference
        done = whole.inference or m
        rows += [["requests completed", f"{done.requests:,} of {m.arrived:,}"
                                        + (f" ({m.dropped:,} dropped)" if m.dropped else "")],
                 ["throughput", f"{m.output_tokens_per_s:,.0f} output tokens/s, "
                                f"{m.requests_per_s:,.2f} req/s"],
                 ["TTFT p50 / p99", f"{format_value(m.ttft_s.p50, 's')} / "
                                    f"{format_value(m.ttft_s.p99, 's')}"],
                 ["TPOT p50 / p99", f"{format_value(m.tpot_s.p50, 's')} / "
                                    f"{format_value(m.tpot_s.p99, 's')}"],
                 ["E2E p50 / p99", f"{format_value(m.e2e_s.p50, 's')} / "
                                   f"{format_value(m.e2e_s.p99, 's')}"]]
        if m.slo_attainment is not None:
            rows.append(["SLO attainment", f"{m.slo_attainment:.1%}"])
    u = result.utilization
    rows += [["utilization (compute / HBM / network)",
              f"{u.compute:.1%} / {u.memory_bandwidth:.1%} / {u.network:.1%}"],
             ["cost of the steady window" if whole.steady is not None and whole.steady.found
              else "cost of the run", format_value(result.cost_usd, "USD")],
             ["cost per million tokens", format_value(result.cost_per_million_tokens_usd, "USD")],
             ["energy", f"{result.energy_kwh:,.4g} kWh"],
             ["average facility power", format_si(result.average_power_w, "W")],
             ["carbon", f"{result.carbon_kg:,.4g} kg CO2e"],
             ["memory per device", f"{format_si(result.memory.total_bytes, 'B')} of "
                                   f"{format_si(result.memory.capacity_bytes, 'B')}"]]
    if result.confidence is not None:
        rows += [[label, text] for label, text in confidence_rows(result.confidence)]
    return rows


def run_page(result: Result, figures: Sequence[tuple[str, bytes, str]]) -> str:
    """The report of one run: headline table, then each (heading, png, caption) figure."""
    sections = [Section("Summary", table(["figure", "value"], headline_rows(result))
                        + notes([*result.warnings, *result.notes]))]
    sections += [Section(heading, figure(png, caption)) for heading, png, caption in figures]
    subtitle = (f"{result.kind} of {result.model} on {result.accelerators} x {result.hardware}, "
                f"{result.precision}, seed {result.seed}")
    return page(result.scenario or "xpusim run", subtitle, sections)


# ---- the page of a comparison --------------------------------------------------------------
def compare_cells(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The side-by-side table (metrics down, profiles across) as text: each cell is the
    value and its ratio to the baseline."""
    rows = data["rows"]
    header = ["metric", *(f"{r['hardware']}" + (" (baseline)" if i == 0 else "")
                          for i, r in enumerate(rows))]
    body = [["accelerators", *(f"{r['accelerators']:,}" if r["accelerators"] else "-"
                               for r in rows)],
            ["layout", *(r["layout"] or "-" for r in rows)],
            ["status", *(r["status"].replace("_", " ") for r in rows)]]
    for m in data["metrics"]:
        if all(r["metrics"].get(m["key"]) is None for r in rows):
            continue
        label = m["label"] + ("" if m["unit"] in ("s", "fraction", "USD", "W", "J")
                              else f" ({m['unit']})")
        body.append([label, *(_cell(r, m) for r in rows)])
    return header, body


def _cell(row: Mapping[str, Any], metric: Mapping[str, Any]) -> str:
    value = row["metrics"].get(metric["key"])
    if value is None:
        return "-"
    unit = metric["unit"]
    text = format_value(value, unit if unit in ("s", "fraction", "USD", "W", "J") else "")
    return f"{text} ({format_ratio(row['ratios'].get(metric['key']))})"


def compare_sizing(data: Mapping[str, Any]) -> str:
    """How a comparison sized its fleets, in words: at each profile's best within the SLO
    (serving's default), the fixed-load view, or a budget (``match``)."""
    load = data.get("load_per_s")
    if data.get("mode") == "best":
        return (f"each at its best within the SLO: one replica's highest sustainable rate, "
                f"then the fewest replicas, billed in whole purchase units, that carry the "
                f"scenario's {load:g} req/s")
    sizing = {"count": "same accelerator count", "power": "same facility power budget",
              "cost": "same spend per hour"}.get(data["match"], data["match"])
    text = f"{sizing} ({data.get('budget', '')})"
    if data.get("mode") == "fixed_load":
        text = f"fixed-load view: every profile at the scenario's {load:g} req/s offered " \
               f"load, {text}"
    return text


def compare_page(data: Mapping[str, Any], figures: Sequence[tuple[str, bytes, str]]) -> str:
    """The report of a comparison: the side-by-side table, notes, then each (heading, png,
    caption) figure."""
    header, body = compare_cells(data)
    remarks = [f"{r['hardware']}: {r['reason']}" for r in data["rows"] if r.get("reason")]
    remarks += [f"{r['hardware']}: {n}" for r in data["rows"] for n in r.get("notes", [])]
    remarks += list(data.get("notes", []))
    sections = [Section("Side by side", table(header, body)
                        + f"<p>Ratios are value / baseline ({html.escape(data['baseline'])}). "
                          f"Sizing: {html.escape(compare_sizing(data))}.</p>"
                        + notes(remarks))]
    sections += [Section(heading, figure(png, caption)) for heading, png, caption in figures]
    return page(f"Comparison: {', '.join(r['hardware'] for r in data['rows'])}",
                f"{data['kind']} on {len(data['rows'])} profiles, baseline {data['baseline']}; "
                f"from the scenario '{data['scenario']}', each profile at the layout and count "
                f"of its own column", sections)
