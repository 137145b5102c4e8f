"""``xpusim calibrate``: fit a hardware profile (and serving stack) to the user's measured runs,
write the calibrated profile, and say how much to trust it."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from rich.table import Table

from simulator.calibration.calibrate import (
    NOT_IDENTIFIED,
    CalibrationResult,
    calibrate,
    show_value,
)
from simulator.calibration.forward import Forward, build
from simulator.calibration.measurements import load_measurements
from simulator.calibration.profile_out import record, write_outputs
from simulator.errors import InputError
from simulator.report.console import stdout_console


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``calibrate`` to the ``xpusim`` subcommands."""
    from simulator.cli.sweep_cmd import add_executor_flags

    p = subparsers.add_parser(
        "calibrate", help="fit a profile's efficiencies and overheads to your own measured runs",
        description="Reads a measurements file (runs, the scenario of each, and the figures "
                    "measured or the benchmark report holding them), finds which physical "
                    "parameters those runs can identify, fits them (a maximum-a-posteriori "
                    "fit around the profile's values), and writes a calibrated profile with "
                    "each fitted number's uncertainty and provenance. Reports the error on "
                    "the runs before, after, and with each run left out. docs/calibration.md")
    p.add_argument("file", help="measurements file (YAML, JSON or CSV)")
    p.add_argument("--hardware", help="the profile to calibrate, a built-in id or a path "
                                      "(default: the file's `hardware`, else the scenarios')")
    p.add_argument("--parameters", help="comma-separated parameters to fit (default: every "
                                        "one the runs identify); see --list")
    p.add_argument("--noise", type=float, default=None,
                   help="relative disagreement expected per figure (default: the file's, "
                        "else 0.05)")
    p.add_argument("--out", help="calibrated profile to write (default: <id>-calibrated.yaml "
                                 "in the current directory)")
    p.add_argument("--id", dest="new_id", help="id of the calibrated profile (default: "
                                               "<id>-calibrated)")
    p.add_argument("--list", action="store_true",
                   help="list the parameters these runs could calibrate, and stop")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_executor_flags(p)
    p.set_defaults(func=run_calibrate)
    return p


def run_calibrate(args: argparse.Namespace) -> int:
    """``xpusim calibrate``: fit, write the profile, print the report."""
    from simulator.cli.sweep_cmd import print_json, reporting_executor

    path = Path(args.file)
    spec, measurements = load_measurements(path)
    hardware = args.hardware or spec.hardware
    base = Path.cwd() if args.hardware else path.parent
    forward = build(measurements, hardware, base)
    if args.list:
        _list(forward)
        return 0
    names = _names(args.parameters) if args.parameters else spec.parameters
    noise = spec.noise if args.noise is None else args.noise
    if not 0 < noise < 1:
        raise InputError(f"--noise must be a fraction between 0 and 1, got {noise}")
    with reporting_executor(args, "calibrating") as executor:
        result = calibrate(forward, names=names, noise=noise, executor=executor)
    new_id = args.new_id or f"{forward.hardware['id']}-calibrated"
    out = Path(args.out) if args.out else Path.cwd() / f"{new_id}.yaml"
    command = "xpusim calibrate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    written = write_outputs(result, forward, out, new_id=new_id, command=command,
                            measurements_file=path)
    if args.format == "json":
        print_json({**record(result, forward, command=command, measurements_file=path),
                    "warnings": result.warnings, "written": [str(w) for w in written],
                    "figures_detail": [vars(f) for f in result.figures]})
    else:
        render(result, written)
    return 0


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _list(forward: Forward) -> None:
    table = Table(title="Parameters these runs could calibrate", title_justify="left")
    for name in ("parameter", "what", "profile value", "prior spread"):
        table.add_column(name)
    for k in forward.knobs:
        table.add_row(k.name, k.label, show_value(k.prior, k.unit), f"x{math.exp(k.prior_sd):.2f}")
    stdout_console().print(table)


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def render(result: CalibrationResult, written: list[Path]) -> None:
    """The terminal report: parameters, figures, error summary, warnings, files written."""
    console = stdout_console()
    params = Table(title="Parameters", title_justify="left")
    for name in ("parameter", "before", "after", "± (1 sd)", "status"):
        params.add_column(name, justify="left" if name in ("parameter", "status") else "right")
    for p in result.parameters:
        after = show_value(p.value, p.knob.unit) if p.status != NOT_IDENTIFIED else "-"
        params.add_row(p.knob.name, show_value(p.knob.prior, p.knob.unit), after,
                       f"{p.relative_sd * 100:.0f}%",
                       p.status + (" (at bound)" if p.at_bound else ""))
    console.print(params)
    figures = Table(title="Measured figures: error of the prediction (predicted / measured - 1)",
                    title_justify="left")
    for name in ("run", "metric", "measured", "before", "after", "left out"):
        figures.add_column(name, justify="left" if name in ("run", "metric") else "right")
    for f in result.figures:
        figures.add_row(f.run, f.metric, f"{f.measured:.4g}", _pct(f.before / f.measured - 1),
                        _pct(f.after / f.measured - 1), _pct(f.left_out / f.measured - 1))
    console.print(figures)
    for which, label in (("before", "before"), ("after", "after"),
                         ("left_out", "each run left out")):
        s = result.summary(which)
        console.print(f"median |error| {label}: {s['median'] * 100:.1f}% "
                      f"(worst {s['worst'] * 100:.1f}%)", markup=False)
    for warning in result.warnings:
        console.print(f"warning: {warning}", markup=False)
    for path in written:
        console.print(f"wrote {path}", markup=False)
