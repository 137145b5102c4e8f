"""One function per subcommand: load, compute, render. Nothing here knows the physics."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from rich.table import Table

from simulator.cli.paths import output_file, output_folder
from simulator.errors import InputError, InputErrors, XpusimError
from simulator.loading import load_scenario
from simulator.perf.roofline_view import roofline as roofline_view
from simulator.profiles.catalog import (
    hardware_ids,
    load_hardware,
    load_model,
    load_stack,
    model_ids,
    stack_ids,
)
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.scenario import Scenario
from simulator.profiles.validation import validate as validate_model
from simulator.profiles.yaml_source import read_yaml
from simulator.report.console import stdout_console
from simulator.report.files import write_markdown_section
from simulator.report.json_text import strict_json
from simulator.report.outputs import write_run_outputs
from simulator.report.profile_tables import (
    detail_table,
    hardware_json,
    hardware_table,
    model_json,
    model_table,
    stack_table,
)
from simulator.report.progress import progress_bar
from simulator.report.roofline_table import render_roofline
from simulator.report.run_report import render_result
from simulator.results import Result
from simulator.results.training import TrainingResult
from simulator.simulate import simulate


def _print_json(data: object) -> None:
    print(strict_json(data))


def run(args: argparse.Namespace) -> int:
    """``xpusim run``: simulate one scenario, print its tables or JSON, and write ``--out`` files
    and the ``--trace`` on request."""
    out = output_folder(args.out, "--out", parents=args.parents) if args.out else None
    trace = None
    if args.trace:  # a trace into the --out folder is fine: the run creates that folder first
        into_out = out is not None and Path(args.trace).parent.resolve() == out.resolve()
        trace = output_file(args.trace, "--trace", parents=args.parents or into_out)
    scenario = load_scenario(args.file, args.overrides)
    if args.trace and scenario.kind != "training":
        raise InputError("--trace is for training scenarios (a step's pipeline timeline); "
                         "for serving use --out DIR for per-request records", file=args.file)
    with progress_bar("simulating", quiet=args.quiet) as progress:
        result = _simulate_located(scenario, args.file, progress)
    if out is not None:
        write_run_outputs(out, result)
    if trace is not None:
        from simulator.report.trace import write_trace

        write_trace(_training_part(result), str(trace))
    if args.format == "json":
        _print_json(result.model_dump(mode="json"))
    else:
        render_result(stdout_console(), scenario, result)
    return 0


def _simulate_located(scenario: Scenario, file: str, progress) -> Result:
    """``simulate``, with the engines' errors (a model that does not fit, failures that leave
    no progress) told against the scenario file and, where one is to blame, its field."""
    from simulator.engine.training.failures import NoProgress

    try:
        return simulate(scenario, progress=progress)
    except (InputError, InputErrors):
        raise
    except XpusimError as exc:
        path = "workload.failures" if isinstance(exc, NoProgress) else None
        raise InputError(str(exc), file=file, path=path) from None


def _training_part(result: Result) -> TrainingResult:
    """The training figures of a run whose scenario :func:`run` checked to be training."""
    if result.training is None:
        raise InputError("--trace is for training scenarios (a step's pipeline timeline)")
    return result.training


def roofline(args: argparse.Namespace) -> int:
    """``xpusim roofline``: the roofline of every operation of one step or serving iteration,
    without simulating."""
    scenario = load_scenario(args.file, args.overrides)
    parts = scenario.pools()  # a mixed fleet: each pool on its hardware and layout
    views = [roofline_view(part) for part in parts]
    if args.format == "json":
        rooflines = {"roofline": views[0].as_dict()} if len(views) == 1 else {
            "pools": [{"hardware": part.hardware.id, "roofline": view.as_dict()}
                      for part, view in zip(parts, views, strict=True)]}
        _print_json({**scenario.summary(), **rooflines})
        return 0
    console = stdout_console()
    for i, (part, view) in enumerate(zip(parts, views, strict=True)):
        if len(views) > 1:
            console.print(f"pool {i}: {part.hardware.id}", style="bold", markup=False)
        render_roofline(console, view)
    return 0


def validate_against(args: argparse.Namespace) -> int:
    """``xpusim validate-against``: run the published-measurement cases, print predicted against
    measured, and rewrite the generated part of a Markdown page on request."""
    from simulator.validation.report import render_tables, to_markdown
    from simulator.validation.runner import run_cases

    if args.markdown:
        output_file(args.markdown, "--markdown", parents=args.parents)
    if args.bands:
        if args.only:
            raise InputError("--bands describes the whole suite; it cannot be written from "
                             "the cases --only selects (drop --only)")
        output_file(args.bands, "--bands", parents=args.parents)
    with progress_bar("validating", quiet=args.quiet, counts=True) as progress:
        report = run_cases(args.directory, only=args.only, progress=progress)
    if args.format == "json":
        _print_json(report.as_dict())
    else:
        console = stdout_console()
        for table in render_tables(report):
            console.print(table)
    if args.markdown:
        command = "xpusim validate-against " + " ".join(
            [args.directory, *(f"--only {i}" for i in args.only or ()),
             f"--markdown {args.markdown}"])
        write_markdown_section(Path(args.markdown), to_markdown(report, command, date.today()))
    if args.bands:
        from simulator.report.files import write_atomic
        from simulator.validation.bands import bands_json

        command = f"xpusim validate-against {args.directory} --bands {args.bands}"
        write_atomic(Path(args.bands), bands_json(report, command, date.today()))
    return 0


def show(args: argparse.Namespace) -> int:
    """``xpusim show``: the fully resolved scenario as JSON (defaults and overrides applied,
    profiles by id), so users can see what will run."""
    scenario = load_scenario(args.file, args.overrides)
    data = scenario.model_dump(mode="json", exclude={"hardware", "model"})
    data = {"name": data.pop("name"), "hardware": scenario.hardware.id,
            "model": scenario.model.id, **data}
    _print_json(data)
    return 0


def _kind_of(data: object) -> str:
    """Guess what a YAML file is from its top-level keys."""
    if isinstance(data, dict):
        if "workload" in data:
            return "scenario"
        if "compute" in data or "scale_up" in data:
            return "hardware"
        if "layers" in data or "hidden_size" in data:
            return "model"
    return "unknown"


def validate(args: argparse.Namespace) -> int:
    """``xpusim validate``: check scenario and profile files without running them; every problem of
    every file is reported before exiting."""
    console = stdout_console()
    errors: list[InputError] = []
    for name in args.files:
        try:
            kind = _validate_one(name)
            console.print(f"ok: {name} ({kind})", markup=False)
        except InputErrors as exc:
            errors.extend(exc.errors)
        except InputError as exc:
            errors.append(exc)
        except XpusimError as exc:
            errors.append(InputError(str(exc), file=name))
    if errors:
        raise InputErrors(errors)
    return 0


def _validate_one(name: str) -> str:
    doc = read_yaml(name)
    kind = _kind_of(doc.data)
    if kind == "scenario":
        load_scenario(name)
    elif kind == "hardware":
        validate_model(HardwareProfile, doc.data, doc)
    elif kind == "model":
        validate_model(ModelProfile, doc.data, doc)
    else:
        raise InputError("not a scenario (needs 'workload'), hardware profile (needs "
                         "'compute') or model profile (needs 'layers')", file=name)
    return kind


def _print_catalog(args: argparse.Namespace, as_json: Callable[[], Any],
                   as_table: Callable[[], Table]) -> int:
    """Print a catalog listing or entry as JSON or as a table (``--format``); only the form
    asked for is built."""
    if args.format == "json":
        _print_json(as_json())
    else:
        stdout_console().print(as_table())
    return 0


def list_profiles(args: argparse.Namespace) -> int:
    """``xpusim profiles list``: the built-in hardware profiles, one row each."""
    profiles = [load_hardware(i) for i in hardware_ids()]
    return _print_catalog(args, lambda: [hardware_json(p) for p in profiles],
                          lambda: hardware_table(profiles))


def list_models(args: argparse.Namespace) -> int:
    """``xpusim models list``: the built-in model profiles, one row each."""
    models = [load_model(i) for i in model_ids()]
    return _print_catalog(args, lambda: [model_json(m) for m in models],
                          lambda: model_table(models))


def show_profile(args: argparse.Namespace) -> int:
    """``xpusim profiles show``: every field of one hardware profile with its source."""
    profile = load_hardware(args.id, Path.cwd())
    return _print_catalog(args, lambda: hardware_json(profile), lambda: detail_table(profile))


def show_model(args: argparse.Namespace) -> int:
    """``xpusim models show``: every field of one model profile with its source."""
    model = load_model(args.id, Path.cwd())
    return _print_catalog(args, lambda: model_json(model), lambda: detail_table(model))


def list_stacks(args: argparse.Namespace) -> int:
    """``xpusim stacks list``: the built-in serving stacks, one row each."""
    stacks = [load_stack(i) for i in stack_ids()]
    return _print_catalog(args, lambda: [st.model_dump(mode="json") for st in stacks],
                          lambda: stack_table(stacks))


def show_stack(args: argparse.Namespace) -> int:
    """``xpusim stacks show``: every field of one serving stack with its source."""
    stack = load_stack(args.id, Path.cwd())
    return _print_catalog(args, lambda: stack.model_dump(mode="json"),
                          lambda: detail_table(stack))
