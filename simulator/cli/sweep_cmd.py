"""``xpusim sweep``: a grid of ``--set`` values, streamed to a table, resumable.

Also home of what the study commands share: the executor flags and the progress bar.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from simulator.cli.arguments import OneLineParser, whole
from simulator.cli.paths import add_parents_flag, output_file
from simulator.errors import InputError, InputErrors, XpusimError
from simulator.profiles.overrides import apply_overrides
from simulator.report.columns import column_cells, fmt, humanised
from simulator.report.console import printable, stderr_console, stdout_console
from simulator.report.json_text import strict_json
from simulator.report.progress import progress_bar as counted_progress
from simulator.studies.executors import ReportingExecutor, make_executor
from simulator.studies.grid import build_points, parse_axis
from simulator.studies.rows import Base
from simulator.studies.sweep import SweepOutcome, run_sweep

SHOWN = {"training": ["step_time_s", "mfu", "time_s", "billed_accelerators", "cost_usd"],
         "inference": ["requests_per_s", "ttft_p99_s", "tpot_p99_s", "slo_met",
                       "billed_accelerators", "usd_per_hour"]}
MAX_ROWS_SHOWN = 60
MAX_WARNINGS_SHOWN = 20


# ---- shared by the study commands ---------------------------------------------------------
def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """``--jobs``, ``--backend``, ``--address`` and ``--quiet``: where a study's points run, the
    same for every study command."""
    parser.add_argument("--jobs", type=whole(1, 4096), default=None, metavar="N",
                        help="worker processes (default: every core; 1 runs in this process)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local process pool (default) or Ray (pip install 'xpusim[ray]')")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray: join this cluster (e.g. ray://head:10001 or auto) instead "
                             "of starting a local Ray for the run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    """``--set PATH=VALUE`` for the study commands: fixed overrides of the base scenario."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE", help="override a field of the base scenario "
                                                   "(repeatable)")


def executor_from(args: argparse.Namespace):
    """The executor the study flags ask for (a context manager that releases its workers)."""
    return make_executor(args.backend, args.jobs, args.address)


@contextmanager
def reporting_executor(args: argparse.Namespace, label: str) -> Iterator[ReportingExecutor]:
    """The executor the study flags ask for, drawing a ``label`` progress bar (after the first
    second, unless ``--quiet``) as its items finish: how ``plan``, ``sensitivity`` and
    ``calibrate`` run their points."""
    with executor_from(args) as pool, \
            counted_progress(label, quiet=args.quiet, counts=True) as bar:
        yield ReportingExecutor(pool, bar)


def base_from(args: argparse.Namespace) -> Base:
    """The scenario file read once, with the fixed ``--set`` overrides applied."""
    base = Base.from_file(args.file)
    if args.overrides:
        base = Base(apply_overrides(base.data, args.overrides), base.base_dir, base.file)
    return base


@contextmanager
def progress_bar(label: str, total: int, done: int = 0,
                 quiet: bool = False) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr (points done / total, time left), or a no-op when
    ``quiet`` or stderr is not a terminal. Yields ``advance(done=None)``."""
    if quiet or not sys.stderr.isatty() or total == 0:
        yield lambda *_, **__: None
        return
    columns = (TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
               MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left"),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as progress:
        task = progress.add_task(label, total=total, completed=done)

        def advance(*_: Any, completed: int | None = None, **__: Any) -> None:
            """Move the bar on by one point, or to ``completed`` points."""
            if completed is None:
                progress.advance(task)
            else:
                progress.update(task, completed=completed)

        yield advance


def print_json(data: object) -> None:
    """Print ``data`` as indented JSON on stdout (the ``--format json`` of the study commands)."""
    print(strict_json(data))


# ---- sweep --------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sweep`` to the ``xpusim`` subcommands."""
    p = subparsers.add_parser(
        "sweep", help="run a grid of --set values; rows stream to a CSV/JSONL table",
        description="Cartesian product of --grid axes (crossed with the zipped --zip axes), "
                    "each point one simulation and one row of --out. Infeasible points are "
                    "rows with a status and reason. A killed sweep continues with --resume. "
                    "Each point is billed for the whole purchase units (servers, racks, "
                    "slices) its layout uses; cluster.accelerators: auto follows the layout.")
    p.add_argument("file", help="scenario YAML file")
    p.add_argument("--grid", action="append", default=[], metavar="PATH=V1,V2,...",
                   help="an axis of the cartesian product (repeatable)")
    p.add_argument("--zip", action="append", default=[], metavar="PATH=V1,V2,...",
                   help="axes that advance together (same length; together one axis)")
    add_set_flag(p)
    p.add_argument("--seeds", type=whole(0, 10_000), default=0, metavar="N",
                   help="run each point with N seeds (the scenario's seed, +1, ...) and "
                        "summarize mean and 95%% interval per metric")
    p.add_argument("--out", metavar="PATH",
                   help="table file, .csv or .jsonl; rows are appended as points finish")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: skip the points already there")
    add_parents_flag(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_executor_flags(p)
    p.set_defaults(func=sweep)
    return p


def sweep(args: argparse.Namespace) -> int:
    """``xpusim sweep``: build the grid's points, run them (resuming a table on request), print the
    rows or JSON; exit 1 when a point hit a bug in xpusim."""
    if args.out:
        output_file(args.out, "--out", parents=args.parents)
    base = base_from(args)
    grid = [parse_axis(text, "--grid") for text in args.grid]
    zipped = [parse_axis(text, "--zip") for text in args.zip]
    if not grid and not zipped and not args.seeds:
        raise InputError("give at least one --grid or --zip axis (or --seeds N)")
    seed = base.data.get("seed", 0)
    points = build_points(grid, zipped, args.seeds, seed if isinstance(seed, int) else 0)
    with executor_from(args) as executor, \
            progress_bar("sweep", len(points), quiet=args.quiet) as advance:
        outcome = run_sweep(base, points, out=args.out, resume=args.resume, executor=executor,
                            on_row=lambda row, done, total: advance(completed=done))
    if args.format == "json":
        print_json(_as_json(outcome))
    else:
        _render(outcome, base.kind)
    errors = outcome.count("error")
    if errors:
        stderr_console().print(f"error: {errors} point(s) failed inside xpusim (status "
                               f"'error'); their reasons are in the table", markup=False)
        return 1
    return 0


def _counts(outcome: SweepOutcome) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in outcome.rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _as_json(outcome: SweepOutcome) -> dict[str, Any]:
    return {"out": str(outcome.out) if outcome.out else None, "points": len(outcome.rows),
            "computed": outcome.computed, "resumed": outcome.resumed,
            "foreign_rows": outcome.foreign, "dropped_lines": outcome.dropped,
            "status": _counts(outcome),
            "rows": outcome.rows if outcome.out is None else None,
            "summary_path": str(outcome.summary_path) if outcome.summary_path else None,
            "summary": outcome.summary or None}


def _render(outcome: SweepOutcome, kind: str) -> None:
    console = stdout_console()
    counts = ", ".join(f"{n} {status}" for status, n in sorted(_counts(outcome).items()))
    where = f" -> {outcome.out}" if outcome.out else ""
    console.print(f"{len(outcome.rows)} points ({counts}); {outcome.computed} run now, "
                  f"{outcome.resumed} already in the table{where}", markup=False)
    if outcome.dropped:
        console.print(f"note: {outcome.dropped} line(s) of {outcome.out} were not whole rows "
                      f"(torn by a crash?); they were removed and their points run again",
                      markup=False)
    if outcome.foreign:
        console.print(f"note: {outcome.foreign} row(s) of {outcome.out} are not points of "
                      f"this sweep (another grid?); they were kept", markup=False)
    axes = outcome.columns[1:outcome.columns.index("status")]
    if outcome.out is None or len(outcome.rows) <= MAX_ROWS_SHOWN:
        rows = outcome.rows[:MAX_ROWS_SHOWN] if outcome.out else outcome.rows
        columns = [column_cells(c, [row.get(c) for row in rows])
                   for c in (*axes, "status", *SHOWN[kind])]
        table = Table(title="Points", title_justify="left")
        for name, _cells in columns:
            table.add_column(name, justify="left" if name == "status" else "right")
        for cells in zip(*(cells for _name, cells in columns), strict=True):
            table.add_row(*cells)
        console.print(table)
    _render_warnings(console, outcome, axes)
    if outcome.summary:
        _render_summary(console, outcome, kind)


def _render_warnings(console, outcome: SweepOutcome, axes: list[str]) -> None:
    """Each point's warnings (unused or billed-but-idle accelerators, counts that are no
    whole number of purchase units), once per text with the points it holds for, the first
    ``MAX_WARNINGS_SHOWN`` of them; all are in the table's ``warnings`` column."""
    points: dict[str, list[str]] = {}
    for row in outcome.rows:
        for text in str(row.get("warnings") or "").split("; "):
            if text:
                label = ", ".join(f"{a}={row.get(a)}" for a in axes)
                points.setdefault(text, []).append(label)
    lines = [f"warning: {labels[0]}: {text}" if len(labels) == 1 else
             f"warning: {len(labels)} points ({labels[0]}, ...): {text}"
             for text, labels in points.items()]
    for line in lines[:MAX_WARNINGS_SHOWN]:
        console.print(line, markup=False)
    if len(lines) > MAX_WARNINGS_SHOWN:
        console.print(f"... {len(lines) - MAX_WARNINGS_SHOWN} more warnings in the "
                      f"table's warnings column", markup=False)


def _render_summary(console, outcome: SweepOutcome, kind: str) -> None:
    group_by = outcome.summary_columns[:outcome.summary_columns.index("n")]
    # (a billing column is the same for every seed of a point: not summarised)
    shown = [m for m in SHOWN[kind] if f"{m}_mean" in outcome.summary_columns]
    human = {m: humanised(m, [row.get(f"{m}_mean") for row in outcome.summary])
             for m in shown}
    table = Table(title="Mean ± 95% interval over seeds", title_justify="left")
    for name in [*group_by, "n", *(m[:-2] if human[m] else m for m in shown)]:
        table.add_column(name, justify="right")
    for row in outcome.summary:
        cells = [fmt(row.get(c)) for c in (*group_by, "n")]
        for metric in shown:
            mean, half = row.get(f"{metric}_mean"), row.get(f"{metric}_ci95")
            interval = "" if half is None else (
                f" ± {fmt(half, metric, True)}" if human[metric] else f" ± {half:.2g}")
            cells.append(fmt(mean, metric, human[metric]) + interval)
        table.add_row(*cells)
    console.print(table)
    if outcome.summary_path:
        console.print(f"summary -> {outcome.summary_path}", markup=False)


def standalone(register_fn: Callable, argv: Sequence[str] | None = None) -> int:
    """Run one study command without the rest of ``xpusim`` (``python -m``), with the same
    error handling as the main entry point."""
    parser = OneLineParser(prog="xpusim")
    register_fn(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except XpusimError as exc:
        lines = ([e.render() for e in exc.errors] if isinstance(exc, InputErrors)
                 else [str(exc)])
        for line in lines:
            stderr_console().print(f"error: {printable(line, one_line=True)}")
        return exc.exit_code
    except KeyboardInterrupt:
        stderr_console().print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(standalone(register))  # python -m simulator.cli.sweep_cmd sweep FILE ...
