"""``xpusim compare FILE --hardware ID,ID,...``: one workload on several profiles, side by side.

``register(subparsers)`` adds the subcommand to the ``xpusim`` parser; ``run`` is what it
calls. The first profile is the baseline (1.00x); see :mod:`simulator.studies.compare` for
how the cluster and the layout adapt to each profile.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.table import Table
from rich.text import Text

from simulator.cli.paths import add_parents_flag, output_folder
from simulator.cli.single_hardware import refuse_pools
from simulator.errors import InputError
from simulator.report.console import printable, stdout_console
from simulator.report.html import compare_cells, compare_sizing, format_ratio, format_value
from simulator.report.json_text import strict_json
from simulator.report.outputs import comparison_csv, write_compare_outputs
from simulator.report.progress import progress_bar
from simulator.studies.compare import MATCHES, Comparison, Metric, compare
from simulator.studies.rows import Base

_PLAIN_UNITS = ("s", "fraction", "USD", "W", "J")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``xpusim`` subcommands; return its parser."""
    parser = subparsers.add_parser(
        "compare", help="the same workload on several hardware profiles, side by side",
        description="Run one scenario on several hardware profiles (the first is the "
                    "baseline) with the cluster and layout adapted to each, and show "
                    "absolute figures and ratios to the baseline.")
    parser.add_argument("file", help="scenario YAML file")
    parser.add_argument("--hardware", action="append", required=True, metavar="ID,ID,...",
                        help="profiles to compare, comma-separated (built-in ids or paths); "
                             "the first is the baseline (repeatable)")
    parser.add_argument("--fixed-load", action="store_true",
                        help="serving: run every profile at the scenario's offered load on "
                             "the scenario's cluster size (or --match budget) instead of the "
                             "default, each profile at its best within the SLO (its highest "
                             "sustainable rate, and the cheapest whole-unit fleet carrying "
                             "the load)")
    parser.add_argument("--match", choices=MATCHES, default="count",
                        help="size each cluster to the baseline's accelerator count (default), "
                             "facility power budget, or spend per hour (training, or serving "
                             "with --fixed-load)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE",
                        help="override a field before validation, e.g. --set "
                             "workload.arrivals.requests=500 (repeatable)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table (default), json or csv on stdout")
    parser.add_argument("--out", metavar="DIR",
                        help="write comparison.json, comparison.csv, plots, report.html and "
                             "each profile's result.json and CSVs to DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_parents_flag(parser)
    parser.set_defaults(func=run)
    return parser


def hardware_list(values: list[str]) -> list[str]:
    """``--hardware a,b --hardware c`` -> [a, b, c]."""
    ids = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not ids:
        raise InputError("--hardware needs at least one profile id, e.g. "
                         "--hardware h100-sxm,mi300x")
    return ids


def run(args: argparse.Namespace) -> int:
    """``xpusim compare``: run the comparison, write the ``--out`` files, print JSON, CSV or
    the table."""
    ids = hardware_list(args.hardware)
    refuse_pools(Base.from_file(args.file).data, "compare")
    out = output_folder(args.out, "--out", parents=args.parents) if args.out else None
    with progress_bar(f"comparing {len(ids)} profiles", quiet=args.quiet, counts=True) as bar:
        comparison = compare(args.file, ids, args.match, args.overrides, progress=bar,
                             fixed_load=args.fixed_load)
    data = comparison.as_dict()
    if out is not None:
        write_compare_outputs(out, data,
                              [(row.hardware, row.result) for row in comparison.rows])
    if args.format == "json":
        print(strict_json(data))
    elif args.format == "csv":
        sys.stdout.write(comparison_csv(data))
    else:
        render(comparison, data)
    return 0


def render(comparison: Comparison, data: dict[str, Any]) -> None:
    """The terminal view of a comparison: one column per profile, values with their ratios to the
    baseline, then the rows' failures and notes."""
    console = stdout_console()
    console.print(f"Comparison: {', '.join(r.hardware for r in comparison.rows)}", style="bold")
    console.print(f"from the scenario '{comparison.scenario}'; each profile runs at the layout "
                  f"and count of its own rows, not necessarily the scenario's", markup=False)
    console.print(f"{comparison.kind} on {len(comparison.rows)} profiles, "
                  f"{compare_sizing(data)}; ratios are value / {comparison.baseline.hardware}",
                  markup=False)
    header, cells = compare_cells(data)
    table = Table(title_justify="left")
    table.add_column(header[0], style="cyan")
    for name in header[1:]:
        table.add_column(name, justify="right")
    for cell_row in cells[:3]:  # accelerators, layout, status
        table.add_row(*cell_row)
    metrics = [m for m in comparison.metrics
               if any(r.metrics.get(m.key) is not None for r in comparison.rows)]
    for m in metrics:
        label = m.label + ("" if m.unit in _PLAIN_UNITS else f" ({m.unit})")
        table.add_row(label, *(_cell(r.metrics.get(m.key), r.ratios.get(m.key), m, i == 0)
                               for i, r in enumerate(comparison.rows)))
    console.print(table)
    for row in comparison.rows:
        if row.reason:
            console.print(Text(printable(row.hardware), style="red"),
                          f"({row.status.replace('_', ' ')}): {row.reason}", highlight=False)
    for row in comparison.rows:
        for note in row.notes:
            console.print(f"note: {row.hardware}: {note}", markup=False)
    for note in comparison.notes:
        console.print(f"note: {note}", markup=False)


def _cell(value: float | None, ratio: float | None, metric: Metric, baseline: bool) -> Text:
    """A value and its ratio to the baseline, the ratio green where it is better, red where
    worse."""
    if value is None:
        return Text("-")
    text = Text(format_value(value, metric.unit if metric.unit in _PLAIN_UNITS else ""))
    text.append("  ")
    style = "dim"
    if ratio is not None and not baseline and metric.better != "neither":
        better = ratio > 1.0005 if metric.better == "higher" else ratio < 0.9995
        worse = ratio < 0.9995 if metric.better == "higher" else ratio > 1.0005
        style = "green" if better else "red" if worse else "dim"
    text.append(format_ratio(ratio), style=style)
    return text
