"""The ``xpusim`` command: parse arguments, call one function, render, map errors to exit codes.

Exit codes: 0 success, 2 bad input (one clear message per problem, no traceback),
1 an internal error (a bug: the traceback is kept).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from simulator.cli import (
    calibrate_cmd,
    commands,
    compare_cmd,
    plan_cmd,
    roadmap_cmd,
    sensitivity_cmd,
    sweep_cmd,
)
from simulator.cli.arguments import OneLineParser
from simulator.cli.paths import add_parents_flag
from simulator.errors import InputErrors, XpusimError
from simulator.report.console import printable, stderr_console


def _add_format(parser: argparse.ArgumentParser) -> None:
    """``--format table|json``, shared by the commands that print one answer."""
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default) or json on stdout")


def _add_overrides(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    """``--set PATH=VALUE`` (repeatable), applied to the scenario before validation."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The ``xpusim`` command line: each subcommand with its flags and the function it
    calls (``args.func``). Study commands register themselves (``*_cmd.register``)."""
    parser = OneLineParser(
        prog="xpusim",
        description="Accelerator cost/throughput simulator for LLM training and inference.",
    )
    parser.add_argument("--version", action="version", version=f"xpusim {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_checks(sub)
    compare_cmd.register(sub)
    sweep_cmd.register(sub)
    plan_cmd.register(sub)
    sensitivity_cmd.register(sub)
    roadmap_cmd.register(sub)
    calibrate_cmd.register(sub)
    _add_catalog(sub)
    return parser


def _add_run(sub: argparse._SubParsersAction) -> None:
    """``xpusim run``: one scenario, its tables, and optionally files and a trace."""
    run = sub.add_parser("run", help="simulate one scenario file")
    run.add_argument("file", help="scenario YAML file")
    _add_overrides(run, "override a field before validation, e.g. --set "
                        "cluster.accelerators=16 (repeatable)")
    _add_format(run)
    run.add_argument("--out", metavar="DIR",
                     help="write result.json, CSVs (per-request records for serving, the step "
                          "breakdown for training), PNG plots and a self-contained "
                          "report.html to DIR")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--trace", metavar="PATH",
                     help="training: write a Chrome/Perfetto trace of one simulated step")
    add_parents_flag(run)
    run.set_defaults(func=commands.run)


def _add_checks(sub: argparse._SubParsersAction) -> None:
    """The commands that inspect inputs or check the model without running a study:
    ``validate``, ``show``, ``roofline`` and ``validate-against``."""
    validate = sub.add_parser("validate", help="check scenario or profile files without running")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=commands.validate)

    show = sub.add_parser("show", help="print the fully resolved scenario (defaults and "
                                       "overrides applied)")
    show.add_argument("file")
    _add_overrides(show)
    show.set_defaults(func=commands.show)

    roof = sub.add_parser("roofline", help="FLOPs, bytes, intensity, bound and time of every "
                                           "operation of one step or serving iteration")
    roof.add_argument("file")
    _add_overrides(roof)
    _add_format(roof)
    roof.set_defaults(func=commands.roofline)

    check = sub.add_parser("validate-against", help="run the published-measurement cases and "
                                                    "report predicted vs measured")
    check.add_argument("directory", nargs="?", default="validation",
                       help="folder of case files (default: validation)")
    check.add_argument("--only", action="append", default=None, metavar="ID",
                       help="run only these case ids (an id also selects its -suffixed rows)")
    check.add_argument("--markdown", metavar="PATH",
                       help="also write the report as Markdown (docs/validation.md)")
    check.add_argument("--bands", metavar="PATH",
                       help="also write the per-regime error bands every result's confidence "
                            "is read from (simulator/confidence/error_bands.json); needs the "
                            "whole suite, so not with --only")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    add_parents_flag(check)
    _add_format(check)
    check.set_defaults(func=commands.validate_against)


def _add_catalog(sub: argparse._SubParsersAction) -> None:
    """``xpusim profiles|models|stacks list|show``: the built-in hardware, model and
    serving-stack profiles."""
    for noun, help_text, list_func, show_func in (
            ("profiles", "built-in hardware profiles", commands.list_profiles,
             commands.show_profile),
            ("models", "built-in model profiles", commands.list_models, commands.show_model),
            ("stacks", "built-in serving stacks (workload.engine)", commands.list_stacks,
             commands.show_stack)):
        group = sub.add_parser(noun, help=help_text)
        verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
        listing = verbs.add_parser("list", help=f"list the {help_text}")
        _add_format(listing)
        listing.set_defaults(func=list_func)
        detail = verbs.add_parser("show", help="every field of one profile with its source")
        detail.add_argument("id", help="built-in id or path to a YAML file")
        _add_format(detail)
        detail.set_defaults(func=show_func)


def _version() -> str:
    """The installed version (imported late: ``simulator`` imports the whole API)."""
    from simulator import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``xpusim`` command; returns the exit code (0 ok, 2 bad input, 130 interrupted).
    Errors of the user's input print one line each, without a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a full disk or closed pipe shows here, not at interpreter exit
        return code
    except XpusimError as exc:
        _print_error(exc)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `xpusim profiles list | head`
        _drop_stdout()
        return 0
    except OSError as exc:  # the output cannot be written: a full disk, a vanished folder
        _drop_stdout()
        where = f" {exc.filename}" if exc.filename else " the output"
        _print_error(XpusimError(f"cannot write{where}: {exc.strerror or exc}"))
        return 2
    except KeyboardInterrupt:
        stderr_console().print("interrupted")
        return 130


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _print_error(exc: XpusimError) -> None:
    """One ``error:`` line per problem on stderr."""
    console = stderr_console()
    lines = [e.render() for e in exc.errors] if isinstance(exc, InputErrors) else [str(exc)]
    for line in lines:
        console.print(f"error: {printable(line, one_line=True)}")


if __name__ == "__main__":
    sys.exit(main())
