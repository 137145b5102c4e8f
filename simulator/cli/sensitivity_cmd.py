"""``xpusim sensitivity``: perturb each hardware parameter by ±delta over seeds, rank by the effect
on the headline metric with its 95% interval."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from simulator.cli.arguments import fraction, whole
from simulator.cli.paths import add_parents_flag, output_file
from simulator.cli.single_hardware import refuse_pools
from simulator.errors import InputError
from simulator.report.columns import fmt, header, humanised, labelled
from simulator.report.console import stdout_console
from simulator.report.files import write_atomic
from simulator.report.json_text import strict_json
from simulator.report.outputs import csv_text
from simulator.studies.paired import Interval
from simulator.studies.sensitivity import (
    DEFAULT_SERVING_SEEDS,
    MAX_SEEDS,
    SensitivityResult,
    run_sensitivity,
)
from simulator.units import format_si, format_time


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sensitivity`` to the ``xpusim`` subcommands."""
    from simulator.cli.sweep_cmd import add_executor_flags, add_set_flag

    p = subparsers.add_parser(
        "sensitivity", help="what would a faster part buy? rank hardware parameters by "
                            "their effect on the headline metric, with a noise estimate",
        description="Scales each hardware parameter (peak FLOP/s at every precision, HBM "
                    "bandwidth and capacity, scale-up and scale-out bandwidth and latency, "
                    "power) by 1-delta and 1+delta, simulates each variant and ranks the "
                    "parameters by elasticity: the relative change of the metric per "
                    "relative change of the parameter. Serving runs every variant with "
                    "several seeds, each seed's variants sharing its arrivals and lengths "
                    "(common random numbers); each effect comes with a 95%% interval and "
                    "effects within noise are ranked last.")
    p.add_argument("file", help="scenario YAML file")
    add_set_flag(p)
    p.add_argument("--delta", type=fraction, default=0.1,
                   help="relative perturbation (default 0.1 = ±10%%)")
    p.add_argument("--metric", help="rank by this result column (default: step_time_s for "
                                    "training; ttft_p99_s for serving, output_tokens_per_s "
                                    "for offline serving), e.g. goodput_requests_per_s")
    p.add_argument("--only", action="append", metavar="PARAMETER",
                   help="perturb only these parameters (repeatable), e.g. hbm_bandwidth")
    p.add_argument("--seeds", type=whole(1, MAX_SEEDS), metavar="N",
                   help=f"seeds per variant (the scenario's seed, +1, ...); default "
                        f"{DEFAULT_SERVING_SEEDS} for serving, 1 for training (a training "
                        f"step draws nothing at random: its effects are exact)")
    p.add_argument("--out", metavar="PATH",
                   help="also write the ranked effects with their intervals: .csv (one row "
                        "per parameter and metric) or .json")
    add_parents_flag(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_executor_flags(p)
    p.set_defaults(func=sensitivity)
    return p


def sensitivity(args: argparse.Namespace) -> int:
    """``xpusim sensitivity``: perturb each hardware parameter over the seeds, print the ranked
    effects as JSON or a table, and write them to ``--out``."""
    from simulator.cli.sweep_cmd import base_from, print_json, reporting_executor

    out = output_file(args.out, "--out", parents=args.parents) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise InputError(f"--out {args.out}: give a .csv or .json file name")
    base = base_from(args)
    refuse_pools(base.data, "sensitivity")
    with reporting_executor(args, "sensitivity") as executor:
        result = run_sensitivity(base, delta=args.delta, metric=args.metric, only=args.only,
                                 seeds=args.seeds, executor=executor)
    if out is not None:
        write_atomic(out, strict_json(result.as_dict()) + "\n"
                     if out.suffix.lower() == ".json" else _csv(result))
    if args.format == "json":
        print_json(result.as_dict())
    else:
        render(result)
        if out is not None:
            stdout_console().print(f"effects -> {out}", markup=False)
    return 0


def _csv(result: SensitivityResult) -> str:
    header, rows = result.csv_rows()
    return csv_text(header, [["" if v is None else repr(v) if isinstance(v, float) else v
                              for v in row] for row in rows])


def _quantity(value: float, unit: str) -> str:
    return format_time(value) if unit == "s" else format_si(value, unit)


def _shown_half(found: Interval) -> float | None:
    """The half-width to print: none when unknown, or when one seed is exact by construction
    (a training step: '± 0' would suggest a measurement)."""
    return None if found.half is None or (found.n == 1 and found.half == 0) else found.half


def _pct(found: Interval | None) -> str:
    if found is None:
        return ""
    half = _shown_half(found)
    return f"{found.mean * 100:+.2f}" + ("" if half is None else f" ± {half * 100:.2f}") + "%"


def _el(found: Interval | None) -> str:
    if found is None:
        return ""
    half = _shown_half(found)
    return f"{found.mean:+.3f}" + ("" if half is None else f" ± {half:.3f}")


def _baseline_line(result: SensitivityResult) -> str:
    parts = []
    for m in result.metrics:
        found = result.baseline_interval.get(m)
        if found is None:
            parts.append(labelled(m, result.baseline.get(m)))
            continue
        human = humanised(m, [found.mean])
        half = "" if not found.half else f" ± {fmt(found.half, m, human)}"
        parts.append(f"{header(m, human)} = {fmt(found.mean, m, human)}{half}")
    n = len(result.seeds)
    what = "baseline" if n == 1 else f"baseline (mean ± 95% interval over {n} seeds)"
    return f"{what}: {', '.join(parts)}"


def render(result: SensitivityResult) -> None:
    """The terminal view of a sensitivity study: the baseline, then one row per parameter
    ranked (real effects by |elasticity|, then those within noise), each figure with its 95%
    interval over the seeds, then what the noise estimate rests on and the sides that did
    not run."""
    console = stdout_console()
    d = f"{result.delta * 100:g}%"
    console.print(_baseline_line(result), markup=False)
    table = Table(title=f"Sensitivity of {result.metric} to ±{d} of each hardware parameter "
                        f"(ranked by |elasticity|; within noise last)", title_justify="left")
    for name in ("rank", "parameter", "baseline", f"{result.metric} at -{d}",
                 f"at +{d}", "elasticity", "effect", *(f"el. {m}" for m in result.metrics[1:])):
        table.add_column(name, justify="left" if name in ("parameter", "effect") else "right")
    m0 = result.metric
    for rank, e in enumerate(result.effects, 1):
        low = _pct(e.change_low_interval.get(m0)) or e.low["status"]
        high = _pct(e.change_high_interval.get(m0)) or e.high["status"]
        table.add_row(str(rank), e.parameter.label,
                      _quantity(e.baseline_value, e.parameter.unit), low, high,
                      _el(e.elasticity_interval.get(m0)), e.verdict(m0),
                      *(_el(e.elasticity_interval.get(m)) for m in result.metrics[1:]))
    console.print(table)
    console.print(_noise_note(result), markup=False)
    for e in result.effects:
        for side, row in (("-", e.low), ("+", e.high)):
            if row["status"] != "ok":
                console.print(f"note: {e.parameter.name} {side}{d}: {row['status']}: "
                              f"{row['reason']}", markup=False)


def _noise_note(result: SensitivityResult) -> str:
    n = len(result.seeds)
    if n == 1 and result.deterministic:
        drawn = [m for m in result.metrics
                 if any(getattr(e.elasticity_interval.get(m), "half", 0.0) is None
                        for e in result.effects)]
        also = ("" if not drawn else f"; {', '.join(drawn)} depend(s) on the failures drawn "
                f"from the seed: --seeds N for their interval")
        return (f"noise: none; {result.metric} draws nothing at random (a training step), so "
                f"one seed is exact{also}")
    if n == 1:
        return ("noise: not estimated (one seed); run --seeds 5 or more to tell real effects "
                "from the luck of which requests batch together")
    seeds = f"{result.seeds[0]}..{result.seeds[-1]}"
    return (f"noise: ± is the 95% t interval over {n} seeds ({seeds}), each variant paired with "
            f"its seed's baseline (same arrivals and lengths); 'within noise': the interval "
            f"contains 0")


if __name__ == "__main__":
    from simulator.cli.sweep_cmd import standalone

    sys.exit(standalone(register))  # python -m simulator.cli.sensitivity_cmd sensitivity ...
