"""``xpusim sensitivity``: perturb each hardware parameter by ±delta, rank by the effect on the
headline metric."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from simulator.cli.arguments import fraction
from simulator.report.columns import labelled
from simulator.report.console import stdout_console
from simulator.report.progress import progress_bar
from simulator.studies.executors import ReportingExecutor
from simulator.studies.sensitivity import SensitivityResult, run_sensitivity
from simulator.units import format_si, format_time


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sensitivity`` to the ``xpusim`` subcommands."""
    from simulator.cli.sweep_cmd import add_executor_flags, add_set_flag

    p = subparsers.add_parser(
        "sensitivity", help="what would a faster part buy? rank hardware parameters by "
                            "their effect on the headline metric",
        description="Scales each hardware parameter (peak FLOP/s at every precision, HBM "
                    "bandwidth and capacity, scale-up and scale-out bandwidth and latency, "
                    "power) by 1-delta and 1+delta, simulates each variant and ranks the "
                    "parameters by elasticity: the relative change of the metric per "
                    "relative change of the parameter.")
    p.add_argument("file", help="scenario YAML file")
    add_set_flag(p)
    p.add_argument("--delta", type=fraction, default=0.1,
                   help="relative perturbation (default 0.1 = ±10%%)")
    p.add_argument("--metric", help="rank by this result column (default: step_time_s for "
                                    "training; ttft_p99_s for serving, output_tokens_per_s "
                                    "for offline serving), e.g. goodput_requests_per_s")
    p.add_argument("--only", action="append", metavar="PARAMETER",
                   help="perturb only these parameters (repeatable), e.g. hbm_bandwidth")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_executor_flags(p)
    p.set_defaults(func=sensitivity)
    return p


def sensitivity(args: argparse.Namespace) -> int:
    """``xpusim sensitivity``: perturb each hardware parameter, print the ranked effects as JSON or
    a table."""
    from simulator.cli.sweep_cmd import base_from, executor_from, print_json

    base = base_from(args)
    with executor_from(args) as pool, progress_bar("sensitivity", quiet=args.quiet,
                                                   counts=True) as bar:
        result = run_sensitivity(base, delta=args.delta, metric=args.metric, only=args.only,
                                 executor=ReportingExecutor(pool, bar))
    if args.format == "json":
        print_json(result.as_dict())
    else:
        render(result)
    return 0


def _quantity(value: float, unit: str) -> str:
    return format_time(value) if unit == "s" else format_si(value, unit)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.2f}%"


def _el(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def render(result: SensitivityResult) -> None:
    """The terminal view of a sensitivity study: the baseline, then one row per parameter ranked by
    elasticity, then the sides that did not run."""
    console = stdout_console()
    d = f"{result.delta * 100:g}%"
    base = ", ".join(labelled(m, result.baseline.get(m)) for m in result.metrics)
    console.print(f"baseline: {base}", markup=False)
    table = Table(title=f"Sensitivity of {result.metric} to ±{d} of each hardware parameter "
                        f"(ranked by |elasticity|)", title_justify="left")
    for name in ("rank", "parameter", "baseline", f"{result.metric} at -{d}",
                 f"at +{d}", "elasticity", *(f"el. {m}" for m in result.metrics[1:])):
        table.add_column(name, justify="left" if name == "parameter" else "right")
    for rank, e in enumerate(result.effects, 1):
        low = _pct(e.change_low[result.metric]) or e.low["status"]
        high = _pct(e.change_high[result.metric]) or e.high["status"]
        table.add_row(str(rank), e.parameter.label,
                      _quantity(e.baseline_value, e.parameter.unit), low, high,
                      _el(e.elasticity[result.metric]),
                      *(_el(e.elasticity[m]) for m in result.metrics[1:]))
    console.print(table)
    for e in result.effects:
        for side, row in (("-", e.low), ("+", e.high)):
            if row["status"] != "ok":
                console.print(f"note: {e.parameter.name} {side}{d}: {row['status']}: "
                              f"{row['reason']}", markup=False)


if __name__ == "__main__":
    from simulator.cli.sweep_cmd import standalone

    sys.exit(standalone(register))  # python -m simulator.cli.sensitivity_cmd sensitivity ...
