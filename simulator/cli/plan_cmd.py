"""``xpusim plan``: the cheapest deployment meeting an SLO, or the fastest / cheapest training
layout and cluster size; the winner, runners-up and Pareto front as tables and a PNG."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from simulator.cli.arguments import (
    accelerator_counts,
    choices,
    duration,
    positive_number,
    whole,
    wholes,
)
from simulator.cli.paths import add_parents_flag, output_file
from simulator.cli.single_hardware import refuse_pools
from simulator.errors import InputError
from simulator.profiles.numbers import MAX_ACCELERATORS
from simulator.profiles.precision import Precision
from simulator.profiles.training import Recompute
from simulator.report.columns import column_cells
from simulator.report.console import stdout_console
from simulator.studies.plan import DROPPED, PlanResult
from simulator.studies.plan_serving import plan_serving
from simulator.studies.plan_training import plan_training
from simulator.studies.table import write_table


def _words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``plan`` to the ``xpusim`` subcommands."""
    from simulator.cli.sweep_cmd import add_executor_flags, add_set_flag

    p = subparsers.add_parser(
        "plan", help="goal-seeking: cheapest deployment meeting the SLO, or fastest/cheapest "
                     "training layout",
        description="Serving scenarios: the cheapest deployment (profile, precision, TP/EP, "
                    "batch limit, replicas) meeting workload.slo at --rate. Training "
                    "scenarios: the fastest or cheapest layout and cluster size that fits "
                    "memory (and --deadline). Lists are comma-separated; unset ones keep the "
                    "scenario's value or a sensible range.")
    p.add_argument("file", help="scenario YAML file")
    p.add_argument("--goal", choices=("cheapest", "fastest"),
                   help="serving: cheapest (the only goal); training: fastest (default) or "
                        "cheapest")
    add_set_flag(p)
    serving = p.add_argument_group("serving")
    serving.add_argument("--rate", type=positive_number, metavar="REQ_PER_S",
                         help="target arrival rate (default: the scenario's)")
    serving.add_argument("--profiles", type=_words, metavar="ID,...",
                         help="hardware profiles to choose from (default: the scenario's)")
    serving.add_argument("--precisions", type=choices(x.value for x in Precision), metavar="P,...",
                         help="weight precisions, e.g. bf16,fp8")
    serving.add_argument("--max-batch", type=wholes(), metavar="N,...",
                         help="batching.max_batch_size values")
    serving.add_argument("--max-accelerators", type=whole(1, MAX_ACCELERATORS),
                         default=1024, metavar="N",
                         help="largest fleet considered (default 1024)")
    serving.add_argument("--latency", choices=("ttft", "tpot", "e2e"), default="ttft",
                         help="the latency (p99) traded against cost on the Pareto front")
    serving.add_argument("--capacity", action="store_true",
                         help="also search the winner's highest arrival rate that still "
                              "meets the SLO and keeps up (sustainable_rate_per_s; about 8 "
                              "more rates, some run longer while the backlog grows)")
    training = p.add_argument_group("training")
    training.add_argument("--deadline", type=duration, metavar="TIME",
                          help="time to train to meet, with failures, e.g. '30 d' or '720 h'")
    training.add_argument("--accelerators", type=accelerator_counts(), metavar="N,...",
                          help="cluster sizes to choose from (default: the scenario's)")
    training.add_argument("--pp", type=wholes(), metavar="N,...")
    training.add_argument("--cp", type=wholes(), metavar="N,...")
    training.add_argument("--micro-batch", type=wholes(), metavar="N,...")
    training.add_argument("--recompute", type=choices(r.value for r in Recompute),
                          metavar="MODE,...",
                          help="none, selective, full (default: all three)")
    training.add_argument("--zero", type=wholes(0, 3), metavar="N,...",
                          help="ZeRO stages (default: 1, 3 and the scenario's)")
    training.add_argument("--exhaustive", action="store_true",
                          help="simulate every layout that fits (no dominance, no bound)")
    _add_search_flags(training)
    _add_shared(p)
    add_executor_flags(p)
    p.set_defaults(func=plan)
    return p


def _add_search_flags(training: argparse._ArgumentGroup) -> None:
    """The training flags of the layout search: chunks per stage, pinned fields, the bound."""
    training.add_argument("--vpp", type=wholes(), metavar="N,...",
                          help="model chunks per pipeline stage (default: every divisor of "
                               "a stage's layers; above 1 runs the interleaved schedule)")
    training.add_argument("--fix", type=_words, action="extend", metavar="PATH,...",
                          default=[], help="keep the scenario's value of these searched "
                          "fields, e.g. workload.parallelism.vpp,workload.recompute")
    training.add_argument("--max-simulations", type=whole(1, 10_000), default=16, metavar="N",
                          help="simulate at most N layouts per cluster size, the best by "
                               "an analytic step estimate (default 16; the scenario's own "
                               "layout is simulated besides)")


def _add_shared(p: argparse.ArgumentParser) -> None:
    """The flags of both kinds of plan: layouts to try, what to show and where files go."""
    both = p.add_argument_group("both")
    both.add_argument("--tp", type=wholes(), metavar="N,...",
                      help="tensor-parallel sizes (default: powers of two up to 8 that fit "
                           "the scale-up domain)")
    both.add_argument("--ep", type=wholes(), metavar="N,...", help="expert-parallel sizes")
    both.add_argument("--max-expected-error", type=error_limit, metavar="FRACTION",
                      help="drop candidates whose expected error (the median |error| of "
                           "their regime on held-out published measurements) is above "
                           "this, e.g. 0.15 or 15%%, and those that extrapolate")
    both.add_argument("--top", type=whole(0, 10_000), default=5,
                      help="runners-up to show (default 5)")
    both.add_argument("--out", metavar="PATH",
                      help="write every evaluated point to a .csv or .jsonl table")
    both.add_argument("--plot", metavar="PATH",
                      help="Pareto plot PNG (default: FILE-STEM-plan.png here)")
    both.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    add_parents_flag(p)
    both.add_argument("--format", choices=("table", "json"), default="table")


def error_limit(text: str) -> float:
    """``--max-expected-error``: a fraction above 0 ('0.15'), or a percentage ('15%')."""
    percent = text.strip().endswith("%")
    try:
        value = float(text.strip().rstrip("%")) / (100 if percent else 1)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not an error above 0, as a fraction "
                                         f"(0.15) or a percentage (15%)")
    return value


def plan(args: argparse.Namespace) -> int:
    """``xpusim plan``: plan a serving or a training scenario (by its kind), write the evaluated
    points and the Pareto plot, print the answer."""
    from simulator.cli.sweep_cmd import base_from, print_json, reporting_executor

    out = output_file(args.out, "--out", parents=args.parents) if args.out else None
    plot = None if args.no_plot else output_file(
        args.plot or f"{Path(args.file).stem}-plan.png", "--plot", parents=args.parents)
    base = base_from(args)
    refuse_pools(base.data, "plan")
    with reporting_executor(args, "planning") as executor:
        if base.kind == "training":
            if args.capacity:
                raise InputError("--capacity searches the arrival rate a serving deployment "
                                 "sustains; this is a training scenario")
            if args.goal is None:
                args.goal = "fastest"
            result = plan_training(
                base, goal=args.goal, deadline_s=args.deadline,
                sizes=args.accelerators, tps=args.tp, pps=args.pp, cps=args.cp, eps=args.ep,
                vpps=args.vpp, micro_batches=args.micro_batch, recomputes=args.recompute,
                zeros=args.zero, fix=args.fix, max_simulations=args.max_simulations,
                exhaustive=args.exhaustive, top=args.top,
                max_expected_error=args.max_expected_error, executor=executor)
        else:
            if args.fix:
                raise InputError("--fix pins a dimension of a training plan's layout search; "
                                 "this is a serving scenario")
            if args.goal == "fastest":
                raise InputError("serving plans find the cheapest deployment meeting the SLO; "
                                 "--goal fastest is for training")
            result = plan_serving(
                base, rate_per_s=args.rate, profiles=args.profiles, precisions=args.precisions,
                tps=args.tp, eps=args.ep, max_batch_sizes=args.max_batch,
                max_accelerators=args.max_accelerators, latency=args.latency, top=args.top,
                capacity=args.capacity, max_expected_error=args.max_expected_error,
                executor=executor)
    if out is not None:
        rows = result.evaluated + result.pruned
        columns = list(dict.fromkeys(k for row in rows for k in row))
        write_table(out, rows, columns)
    plot_note = None
    if plot is not None:
        plot_note = result.plot(plot) or f"plot -> {plot}"
    if args.format == "json":
        print_json({**result.as_dict(), "plot": plot_note})
    else:
        render(result, plot_note, args.out)
    return 0


def _confidence_cells(column: str, rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The plan tables' confidence columns as text: '±19.5% (4)' (median |error| and the
    held-out cases behind it), and whether the candidate extrapolates."""
    if column == "expected_error":
        return "expected error (cases)", [
            "" if r.get("expected_error") is None
            else f"±{r['expected_error']:.1%} ({r.get('error_band_cases')})" for r in rows]
    return "extrapolated", ["yes" if r.get("extrapolation") else "no" for r in rows]


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    cells = [_confidence_cells(c, rows) if c in SHOWN_CONFIDENCE
             else column_cells(c, [row.get(c) for row in rows]) for c in columns]
    table = Table(title=title, title_justify="left")
    for name, _column in cells:
        table.add_column(name, justify="right")
    for row_cells in zip(*(column for _name, column in cells), strict=True):
        table.add_row(*row_cells)
    return table


def render(result: PlanResult, plot_note: str | None, out: str | None) -> None:
    """The terminal view of a plan: the winner, the runners-up and the Pareto front as tables, then
    the notes and where the files went."""
    console = stdout_console()
    columns = [*result.config_columns, *result.metric_columns]
    if result.kind == "training" and result.limit is not None:
        columns.append("meets_deadline")
    columns += SHOWN_CONFIDENCE
    if result.winner is not None:
        extra = ["sustainable_rate_per_s"] if "sustainable_rate_per_s" in result.winner else []
        console.print(_table(f"Winner ({result.goal}, by {result.objective})",
                             [result.winner], columns + extra))
    else:
        console.print(f"no winner: {result.goal} found nothing that meets the goal",
                      markup=False)
    if result.runners_up:
        console.print(_table("Runners-up", result.runners_up, columns))
    if result.pareto:
        console.print(_table(f"Pareto front ({result.y} vs {result.x})", result.pareto,
                             columns))
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    _render_dropped(console, result)
    if out:
        console.print(f"every evaluated point -> {out}", markup=False)
    if plot_note:
        console.print(plot_note, markup=False)


SHOWN_CONFIDENCE = ["expected_error", "extrapolation"]


def _render_dropped(console, result: PlanResult) -> None:
    """What ``--max-expected-error`` dropped, counted by reason, with one example each."""
    if result.max_expected_error is None:
        return
    dropped = result.dropped_for_error()
    total = sum(dropped.values())
    console.print(f"--max-expected-error {result.max_expected_error:.1%}: {total} "
                  f"candidate(s) dropped" + (":" if total else ""), markup=False)
    for reason, count in dropped.items():
        example = next(r[DROPPED] for r in result.evaluated
                       if r.get(DROPPED, "").split(":")[0] == reason)
        console.print(f"  {count} x {reason} (e.g. {example.split(': ', 1)[1]})",
                      markup=False)


if __name__ == "__main__":
    from simulator.cli.sweep_cmd import standalone

    sys.exit(standalone(register))  # python -m simulator.cli.plan_cmd plan FILE ...
