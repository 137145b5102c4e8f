"""``xpusim roadmap FILE``: the cheapest month-by-month fleet for a demand timeline.

``register(subparsers)`` adds the subcommand; ``run`` reads the roadmap file, calls
:func:`simulator.studies.roadmap_result.run_roadmap` and renders the plan (see
:mod:`simulator.studies.roadmap` for the method and the model's assumptions).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.table import Table

from simulator.cli.paths import add_parents_flag, output_folder
from simulator.report.console import stdout_console
from simulator.report.json_text import strict_json
from simulator.report.progress import progress_bar
from simulator.report.roadmap_report import (
    period_cells,
    roadmap_csv,
    sensitivity_cells,
    summary_lines,
    unit_words,
    write_roadmap_outputs,
)
from simulator.studies.executors import make_executor
from simulator.studies.roadmap_result import run_roadmap


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``roadmap`` to the ``xpusim`` subcommands; return its parser."""
    parser = subparsers.add_parser(
        "roadmap", help="the cheapest month-by-month fleet for a demand timeline",
        description="Given a serving scenario and its SLO, a demand timeline, the hardware on "
                    "offer (price, availability, lead time), and the fleet already owned, "
                    "find the cheapest fleet for each month, with its cost, utilisation and "
                    "headroom, the orders to place, and the plan's sensitivity to growth.")
    parser.add_argument("file", help="roadmap YAML file")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table (default), json or csv (one row per month) on stdout")
    parser.add_argument("--out", metavar="DIR",
                        help="write roadmap.json, roadmap.csv, fleet/cost/SLO plots and "
                             "report.html to DIR")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip simulating each month's peak on the plan's fleet (the "
                             "SLO attainment); the plan itself is the same")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="processes for those simulations (default 1: in this process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_parents_flag(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """``xpusim roadmap``: plan, write the ``--out`` files, print the table, JSON or CSV."""
    out = output_folder(args.out, "--out", parents=args.parents) if args.out else None
    with make_executor("local", args.jobs) as executor, \
            progress_bar("simulating each profile", quiet=args.quiet) as bar:
        data = run_roadmap(args.file, progress=lambda fraction: bar(fraction, 1.0),
                           verify=not args.no_verify, executor=executor)
    if out is not None:
        write_roadmap_outputs(out, data)
    if args.format == "json":
        print(strict_json(data))
    elif args.format == "csv":
        sys.stdout.write(roadmap_csv(data))
    else:
        render(data)
    return 0


def render(data: dict[str, Any]) -> None:
    """The terminal view: the month-by-month table, totals and orders, sensitivity, notes."""
    console = stdout_console()
    console.print(f"Roadmap: {data['name']}", style="bold", markup=False)
    console.print(f"from the scenario '{data['scenario']}', {data['horizon_months']} months, "
                  f"capacity for the peak plus {data['headroom']:.0%}", markup=False)
    for header, rows in (period_cells(data), sensitivity_cells(data)):
        table = Table(title_justify="left")
        for i, name in enumerate(header):
            words = i == 0 or name.startswith("fleet") or name == "final units"
            table.add_column(name, justify="left" if words else "right",
                             style="cyan" if i == 0 else None)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in summary_lines(data):
        console.print(line, markup=False)
    for o in data["options"]:
        if o["serves"]:
            console.print(f"option {o['id']}: {o['profile']} ({o['mode']}), {o['layout']} "
                          f"replicas of {o['devices_per_replica']}, {o['block_replicas']} per "
                          f"block of {o['block_units']} "
                          f"{unit_words(o, o['block_units'])} "
                          f"({o['block_accelerators']} accelerators, "
                          f"{o['block_capacity_per_s']:,.1f} req/s, "
                          f"{o['block_usd_per_month']:,.0f} USD/month), from month "
                          f"{o['first_month']}", markup=False)
    for note in data["notes"]:
        console.print(f"note: {note}", markup=False)
